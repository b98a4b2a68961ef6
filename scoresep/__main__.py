"""``python -m scoresep`` = the ``scoresep`` command (what torchrun launches: ``torchrun ... -m scoresep fit``)."""

from scoresep.cli import main

if __name__ == "__main__":
    main()
