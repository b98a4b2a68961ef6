"""The report: the paper's two tables rebuilt from hand-written evaluation files, with known numbers in known cells."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from scoresep.cli import main
from scoresep.report import (
    ReportError,
    average_difference,
    claims_across_seeds,
    config_loss_flags,
    gap_closed,
    load_results,
    load_seeds,
    markdown_tables,
    mean_interval,
    paired_difference,
    render_report,
    render_seeds,
    table1_differences,
)

INSTRUMENTS = ("bass", "guitar", "piano")
INPUT = {"bass": 1.5, "guitar": -5.25, "piano": -2.0}
TRACKS = ("Track01", "Track02", "Track03")
# Student-t 97.5 % quantiles in closed form (independent of scipy): 1 degree of freedom is the Cauchy
# distribution, tan(pi (p - 1/2)); for 2, t = (2p - 1) / sqrt(2 p (1 - p)).
T_1 = math.tan(math.pi * 0.475)  # 12.7062
T_2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # 4.3027
T3 = T_2 / math.sqrt(3)  # the 95 % half-width of three values with standard deviation 1: 2.4841
TABLE1_ORDER = ("supervised", "stage2_cmix", "stage2_hmix", "stage2", "stage3_noadv", "stage3", "stage3_atl",
                "input_mixture", "baseline", "score_masks")
TABLE2_ORDER = ("stage1", "stage3_noadv", "stage3", "stage3_atl")


def _separation(si_sdr: dict[str, float | None], inputs: dict[str, float | None] = INPUT) -> dict:
    section = {name: {"si_sdr": value, "input_si_sdr": inputs[name],
                      "si_sdri": None if value is None else value - inputs[name], "tracks": 7}
               for name, value in si_sdr.items()}
    # Deliberately not the mean over instruments: the report must compute its own avg column.
    section["average"] = {"si_sdr": 99.0, "input_si_sdr": 99.0, "si_sdri": 99.0}
    return section


def _tracks(si_sdr: dict[str, float | None], spread: tuple[float, ...] = (-1.0, 0.0, 1.0),
            inputs: dict[str, float | None] = INPUT, input_spread: tuple[float, ...] = (0.5, 0.0, -0.5)) -> list[dict]:
    """Per-track entries whose means over the tracks are exactly ``si_sdr`` / ``inputs`` (each spread sums to 0):
    track k has ``si_sdr + spread[k]`` for every instrument (None stays None) and ``inputs + input_spread[k]``."""
    entries = []
    for track, offset, input_offset in zip(TRACKS, spread, input_spread, strict=False):
        separation = {}
        for name, value in si_sdr.items():
            separated = None if value is None else value + offset
            mixture = inputs[name] + input_offset
            separation[name] = {"si_sdr": separated, "input_si_sdr": mixture,
                                "si_sdri": None if separated is None else separated - mixture}
        entries.append({"track": track, "seconds": 30.0, "separation": separation})
    return entries


def _transcription(mix: dict[str, float | None], iso: dict[str, float | None]) -> dict:
    def per(accuracy: dict[str, float | None]) -> dict:
        return {name: {"accuracy": value, "precision": 0.5, "recall": 0.5, "f1": 0.5}
                for name, value in accuracy.items()}
    return {"mix": per(mix), "iso": per(iso)}


def _write(folder: Path, row: str, summary: dict, stage: str = "separator", instruments=INSTRUMENTS,
           tracks: list[dict] | None = None, **extra) -> Path:
    """One evaluation file; ``tracks`` None: one entry without separation results (no per-track numbers);
    ``extra``: more top-level keys (e.g. ``reads_score``)."""
    path = folder / "evaluations" / f"{row}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"format": 1, "checkpoint": f"checkpoints/{row}/best.ckpt", "stage": stage, "split": "test",
                "data": "data/minislakh", "instruments": list(instruments),
                "tracks": [{"ignored": True}] if tracks is None else tracks, "summary": summary, **extra}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Four rows evaluated (stage2 with a null, stage3 with a null accuracy), the other six missing; the separation
    rows on three test tracks, spread by -1/0/+1 dB (supervised, stage3) and -2/0/+2 dB (stage2) around their
    means, the input mixture by +0.5/0/-0.5 dB."""
    folder = tmp_path / "results"
    supervised = {"bass": 9.0, "guitar": 4.0, "piano": 6.5}
    _write(folder, "supervised", {"separation": _separation(supervised)}, tracks=_tracks(supervised))
    stage2 = {"bass": 7.25, "guitar": None, "piano": 3.5}
    _write(folder, "stage2", {"separation": _separation(stage2)}, tracks=_tracks(stage2, (-2.0, 0.0, 2.0)))
    _write(folder, "stage1", {"transcription": _transcription({"bass": 0.8, "guitar": 0.4, "piano": 0.5},
                                                               {"bass": 0.9, "guitar": 0.45, "piano": 0.625})},
           stage="transcriptor")
    stage3 = {"bass": 8.0, "guitar": 2.0, "piano": 5.0}
    _write(folder, "stage3", {"separation": _separation(stage3),
                              "transcription": _transcription({"bass": 0.812, "guitar": 0.41, "piano": 0.51},
                                                              {"bass": 0.91, "guitar": None, "piano": 0.61})},
           stage="adversarial", tracks=_tracks(stage3))
    return folder


def _write_reproduce(folder: Path) -> None:
    record = {"preset": "mini", "data": "data/minislakh", "machine": "2 CPU cores, 8 GB", "started": "2025-01-01T10:00",
              "finished": "2025-01-01T10:41", "wall_seconds": 2500.0, "something_new": [1, 2],
              "rows": {"stage1": {"seconds": 300.5, "status": "done"}, "stage2": {"seconds": 900, "status": "done"}}}
    (folder / "reproduce.json").write_text(json.dumps(record), encoding="utf-8")


def _tables(markdown: str) -> list[list[dict[str, str]]]:
    """Parses every GitHub table in the text into rows of {header: cell}; fails if a line has a wrong cell count."""
    blocks: list[list[str]] = []
    previous = False
    for line in markdown.splitlines():
        is_table = line.startswith("|")
        if is_table and not previous:
            blocks.append([])
        if is_table:
            blocks[-1].append(line)
        previous = is_table
    tables = []
    for block in blocks:
        split = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in block]
        header, separator, body = split[0], split[1], split[2:]
        assert all(set(cell) <= set("-:") and cell for cell in separator), block[1]
        for line, cells in zip(block, split, strict=True):
            assert len(cells) == len(header), f"{line!r} has {len(cells)} cells, header has {len(header)}"
        tables.append([dict(zip(header, cells, strict=True)) for cells in body])
    return tables


def _paper_tables(markdown: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    tables = [table for table in _tables(markdown) if "bass (paper)" in table[0]]
    assert len(tables) == 2
    return tables[0], tables[1]


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_render_writes_every_file_atomically(results: Path) -> None:
    paths = render_report(results)
    assert paths == {"markdown": results / "report.md", "table1": results / "table1_separation.csv",
                     "table2": results / "table2_transcription.csv", "chart": results / "si_sdr.png"}
    for path in paths.values():
        assert path.stat().st_size > 0, path
    assert not [path.name for path in results.iterdir() if path.name.startswith(".")], "temporary files left behind"
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(paths["chart"]) as image:
        # 4 rows with numbers (supervised, stage2, stage3, input mixture): 6.4 x 4.5 inches at 120 dpi.
        assert image.format == "PNG" and image.size == (768, 540)
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert markdown.rstrip().endswith("![SI-SDR per row and instrument](si_sdr.png)")


def test_table1_has_ours_beside_the_paper_in_the_paper_order(results: Path) -> None:
    table1, _ = _paper_tables(render_report(results)["markdown"].read_text(encoding="utf-8"))
    assert [row["training"] for row in table1] == [
        "supervised (stems)", "step 2", "step 2", "step 2", "step 3 fine-tune", "step 3 fine-tune",
        "step 3 fine-tune", "input mixture", "baseline [16] classifier critic",
        "score harmonic masks (no training; uses the test score)"]
    supervised, cmix, _, stage2, _, stage3, atl, mixture, _, _ = table1
    # Our cells are "mean ± half-width of the 95 % t-interval over tracks"; spread -1/0/+1 dB: sd 1, so T3.
    assert (supervised["bass"], supervised["bass (paper)"]) == ("9.00 ± 2.48", "11.10")
    assert (supervised["avg"], supervised["avg (paper)"]) == ("6.50 ± 2.48", "8.20")  # (9 + 4 + 6.5) / 3, not 99
    # Null guitar: no cell, avg undefined; spread -2/0/+2 dB doubles the half-width.
    assert (stage2["guitar"], stage2["avg"], stage2["piano"]) == ("—", "—", "3.50 ± 4.97")
    assert (stage3["L_c-mix"], stage3["L_h-mix"], stage3["AML"], stage3["ATL"]) == ("x", "x", "x", "")
    assert (atl["AML"], atl["ATL"], atl["piano (paper)"]) == ("", "x", "5.70")
    assert (cmix["L_c-mix"], cmix["L_h-mix"]) == ("x", "")
    assert (cmix["bass"], cmix["avg"], cmix["bass (paper)"]) == ("not run", "not run", "7.50")
    # The input mixture comes from input_si_sdr, not from si_sdr: 1.5, -5.25, -2.0 -> avg -1.92. Its per-track
    # values are stage2's, kept where stage2's si_sdr is defined (as the summary is): none for guitar, so guitar
    # and the avg, which would leave guitar out, have no interval.
    assert [mixture[name] for name in ("bass", "guitar", "piano", "avg")] == [
        "1.50 ± 1.24", "-5.25 ± n/a", "-2.00 ± 1.24", "-1.92 ± n/a"]
    assert mixture["guitar (paper)"] == "-5.80"


def test_table2_lists_mixture_rows_then_isolated_rows(results: Path) -> None:
    _, table2 = _paper_tables(render_report(results)["markdown"].read_text(encoding="utf-8"))
    assert [row["evaluated on"] for row in table2] == ["mixture"] * 4 + ["isolated tracks"] * 4
    assert [row["training"] for row in table2] == ["step 1", "step 3", "step 3", "step 3"] * 2
    assert [(row["AML"], row["ATL"]) for row in table2[:4]] == [("", ""), ("", ""), ("x", ""), ("", "x")]
    assert (table2[0]["bass"], table2[0]["bass (paper)"]) == ("0.800", "0.850")
    assert (table2[4]["piano"], table2[4]["piano (paper)"]) == ("0.625", "0.660")
    assert (table2[2]["bass"], table2[6]["guitar"], table2[6]["guitar (paper)"]) == ("0.812", "—", "0.580")
    assert (table2[1]["guitar"], table2[1]["guitar (paper)"]) == ("not run", "0.420")
    assert "avg" not in table2[0]  # the paper's Table 2 has no average column


def test_csv_tables_read_back_with_the_csv_module(results: Path) -> None:
    paths = render_report(results)
    header, rows = _read_csv(paths["table1"])
    assert header == ["row", "training", "L_c-mix", "L_h-mix", "AML", "ATL", "bass", "guitar", "piano", "avg",
                      "bass_ci95", "guitar_ci95", "piano_ci95", "avg_ci95",
                      "bass_paper", "guitar_paper", "piano_paper", "avg_paper",
                      "gap_closed", "guitar_gap_closed", "gap_closed_paper", "guitar_gap_closed_paper", "source"]
    assert [row["row"] for row in rows] == list(TABLE1_ORDER)
    by_row = {row["row"]: row for row in rows}
    assert float(by_row["supervised"]["bass"]) == 9.0 and float(by_row["supervised"]["bass_paper"]) == 11.1
    assert float(by_row["supervised"]["bass_ci95"]) == pytest.approx(T3)
    assert float(by_row["supervised"]["avg_ci95"]) == pytest.approx(T3)
    assert by_row["stage2"]["guitar"] == "" and by_row["stage2"]["avg"] == ""
    assert by_row["stage2"]["guitar_ci95"] == "" and by_row["stage2"]["avg_ci95"] == ""
    assert float(by_row["stage2"]["piano_ci95"]) == pytest.approx(2 * T3)
    assert float(by_row["input_mixture"]["guitar"]) == -5.25 and by_row["input_mixture"]["source"] == "stage2.json"
    assert by_row["input_mixture"]["guitar_ci95"] == ""  # a number without an interval
    assert [by_row["baseline"][name] for name in ("bass", "bass_ci95", "avg", "source")] == ["", "", "", ""]
    assert float(by_row["baseline"]["avg_paper"]) == 3.8
    header, rows = _read_csv(paths["table2"])
    assert header == ["row", "training", "evaluated on", "AML", "ATL", "bass", "guitar", "piano",
                      "bass_paper", "guitar_paper", "piano_paper", "source"]
    assert [row["row"] for row in rows] == list(TABLE2_ORDER) * 2
    assert float(rows[4]["piano"]) == 0.625 and float(rows[4]["piano_paper"]) == 0.66
    assert rows[1]["bass"] == "" and rows[1]["source"] == ""


def test_header_from_reproduce_json_only_when_present(results: Path) -> None:
    assert "preset" not in render_report(results)["markdown"].read_text(encoding="utf-8")
    _write_reproduce(results)
    markdown = render_report(results)["markdown"].read_text(encoding="utf-8")
    assert "- preset: mini" in markdown and "- machine: 2 CPU cores, 8 GB" in markdown
    assert "- total wall time: 41.7 min" in markdown  # 2500 s
    times = [table for table in _tables(markdown) if "minutes" in table[0]]
    assert times == [[{"row": "stage1", "training": "step 1", "status": "done", "minutes": "5.0"},
                      {"row": "stage2", "training": "step 2", "status": "done", "minutes": "15.0"}]]
    assert markdown.index("- preset: mini") < markdown.index("Table 1: separation, SI-SDR (dB), test split")
    # A run that records precision: the preset's in the header, each row's own in the table.
    record = json.loads((results / "reproduce.json").read_text(encoding="utf-8"))
    record["precision"] = "bf16-mixed"
    record["rows"]["stage2"]["precision"], record["rows"]["stage1"]["precision"] = "32-true", "bf16-mixed"
    (results / "reproduce.json").write_text(json.dumps(record), encoding="utf-8")
    markdown = render_report(results)["markdown"].read_text(encoding="utf-8")
    assert "- precision (rows that set none): bf16-mixed" in markdown
    times = [table for table in _tables(markdown) if "minutes" in table[0]]
    assert [(row["row"], row["precision"]) for row in times[0]] == [("stage1", "bf16-mixed"), ("stage2", "32-true")]


def test_markdown_tables_are_the_tables_of_the_report(results: Path) -> None:
    tables = markdown_tables(results)
    assert "Table 1: separation, SI-SDR (dB), test split, whole tracks" in tables
    assert "Table 2: transcription, note accuracy" in tables
    assert "si_sdr.png" not in tables and not tables.startswith("#")
    assert tables in render_report(results)["markdown"].read_text(encoding="utf-8")


def test_instruments_beyond_the_paper_get_empty_paper_cells(tmp_path: Path) -> None:
    four = INSTRUMENTS + ("strings",)
    inputs = {**INPUT, "strings": -8.0}
    _write(tmp_path, "stage2", {"separation": _separation({"bass": 7.0, "guitar": 1.0, "piano": 4.0, "strings": 0.0},
                                                          inputs)}, instruments=four)
    paths = render_report(tmp_path)
    table1, _ = _paper_tables(paths["markdown"].read_text(encoding="utf-8"))
    # No per-track results in this file: every number, but no interval.
    assert (table1[3]["strings"], table1[3]["strings (paper)"], table1[3]["avg"]) == ("0.00 ± n/a", "",
                                                                                      "3.00 ± n/a")
    assert table1[7]["strings"] == "-8.00 ± n/a"
    _, rows = _read_csv(paths["table1"])
    assert rows[3]["strings_paper"] == "" and float(rows[3]["bass_paper"]) == 8.4
    assert rows[3]["strings_ci95"] == "" and rows[3]["avg_ci95"] == ""


def test_disagreeing_input_mixtures_name_both_files(results: Path) -> None:
    other = _write(results, "baseline", {"separation": _separation(
        {"bass": 5.0, "guitar": 0.0, "piano": 2.0}, {**INPUT, "piano": -2.0 + 1e-3})})
    with pytest.raises(ReportError) as caught:
        render_report(results)
    message = str(caught.value)
    assert str(results / "evaluations" / "stage2.json") in message and str(other) in message and "piano" in message


def test_input_mixtures_within_tolerance_are_accepted(results: Path) -> None:
    _write(results, "baseline", {"separation": _separation({"bass": 5.0, "guitar": 0.0, "piano": 2.0},
                                                           {**INPUT, "piano": -2.0 + 1e-9})})
    _, rows = _read_csv(render_report(results)["table1"])
    assert float(rows[8]["bass"]) == 5.0 and float(rows[7]["piano"]) == -2.0


def test_missing_or_empty_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="results folder not found") as caught:
        render_report(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(caught.value)
    with pytest.raises(ReportError, match="no evaluation files") as caught:
        render_report(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_bad_evaluation_files_are_named_with_the_key(results: Path) -> None:
    path = results / "evaluations" / "stage3.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    render_report(results)
    before = (results / "report.md").read_bytes()

    path.write_text(json.dumps({key: value for key, value in document.items() if key != "summary"}), encoding="utf-8")
    with pytest.raises(ReportError, match="missing key 'summary'") as caught:
        render_report(results)
    assert str(path) in str(caught.value)

    del document["summary"]["separation"]["guitar"]["si_sdr"]
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ReportError, match=r"missing key 'summary\.separation\.guitar\.si_sdr'"):
        render_report(results)

    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ReportError, match="unreadable JSON") as caught:
        render_report(results)
    assert str(path) in str(caught.value)
    assert (results / "report.md").read_bytes() == before  # a failed render leaves the last report untouched


def test_only_unknown_files_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "my_experiment", {"separation": _separation({"bass": 1.0, "guitar": 1.0, "piano": 1.0})})
    with pytest.raises(ReportError, match=r"no evaluation of a row .*found my_experiment\.json"):
        render_report(tmp_path)


def test_importing_the_module_does_not_import_matplotlib() -> None:
    code = "import sys, scoresep.report; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    # Only the last line is ours: pyfluidsynth (imported through pretty_midi) prints where it found its library when
    # the CI environment variable is set.
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_rows_from_different_splits_are_refused(results: Path) -> None:
    path = results / "evaluations" / "stage1.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**document, "split": "validation"}), encoding="utf-8")
    with pytest.raises(ReportError, match="'validation'") as caught:
        render_report(results)
    assert str(path) in str(caught.value)


def test_transcription_only_results_still_render(tmp_path: Path) -> None:
    _write(tmp_path, "stage1", {"transcription": _transcription({"bass": 0.8, "guitar": 0.4, "piano": 0.5},
                                                                 {"bass": 0.9, "guitar": 0.5, "piano": 0.6})})
    paths = render_report(tmp_path)
    table1, table2 = _paper_tables(paths["markdown"].read_text(encoding="utf-8"))
    assert {row["bass"] for row in table1} == {"not run"}  # the input mixture too: no separation anywhere
    assert "Fewer than two of these rows have separation results: nothing to compare yet." in (
        paths["markdown"].read_text(encoding="utf-8"))
    assert table2[0]["bass"] == "0.800"
    with Image.open(paths["chart"]) as image:
        assert image.size == (720, 540)  # an empty chart, 6 x 4.5 inches, with a "no separation results" note


# ----------------------------------------------------------------------------------------------- statistics


def test_mean_interval_known_answers() -> None:
    mean, half = mean_interval([1.0, 2.0, 3.0])  # sd 1, n 3: t_{0.975, 2} * 1 / sqrt(3)
    assert mean == 2.0 and half == pytest.approx(T3, abs=1e-12) and round(half, 4) == 2.4841
    assert mean_interval([4.0, 4.0, 4.0, 4.0]) == (4.0, 0.0)
    mean, half = mean_interval([0.0, 2.0])  # sd sqrt(2), n 2: t_{0.975, 1} * sqrt(2) / sqrt(2)
    assert mean == 1.0 and half == pytest.approx(T_1, rel=1e-12)
    assert mean_interval([5.0]) == (5.0, None)  # one track: no interval
    with pytest.raises(ValueError, match="at least one"):
        mean_interval([])
    with pytest.raises(ValueError, match="finite"):
        mean_interval([1.0, float("nan")])


def test_paired_difference_known_answers() -> None:
    assert paired_difference([1.0, 5.0, -3.0], [1.0, 5.0, -3.0]) == (0.0, 0.0)  # identical rows
    assert paired_difference([2.5, 7.5, -1.5], [1.0, 6.0, -3.0]) == (1.5, 0.0)  # constant per-track difference
    mean, half = paired_difference([3.0, 5.0, 7.0], [1.0, 2.0, 3.0])  # differences 2, 3, 4
    assert mean == 3.0 and half == pytest.approx(T3)
    assert paired_difference([1.0], [0.5]) == (0.5, None)
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0, 2.0], [1.0])


def test_average_difference_pairs_by_track_over_the_shared_instruments() -> None:
    first = {"a": {"bass": 3.0, "piano": 1.0}, "b": {"bass": 4.0, "piano": 2.0}, "c": {"bass": 9.0}}
    # Track "a" has no piano in the second row: only bass is compared there; "c" is not in the second row at all.
    second = {"a": {"bass": 1.0}, "b": {"bass": 3.0, "piano": 1.0}, "d": {"bass": 0.0}}
    difference = average_difference(first, second, ("bass", "guitar", "piano"), ("one", "two"))
    assert (difference.first, difference.second, difference.tracks) == ("one", "two", 2)
    assert difference.mean == 1.5 and difference.half_width == pytest.approx(T_1 * 0.5)
    assert difference.instruments == ("bass", "piano") and difference.measurable is False
    none = average_difference(first, {"x": {"bass": 1.0}}, ("bass",))
    assert (none.mean, none.half_width, none.tracks, none.measurable) == (None, None, 0, None)


# ----------------------------------------------------------------------------------------------- report intervals


def _difference_lines(markdown: str) -> list[str]:
    section = markdown.split("**Which differences are inside the noise**", 1)[1].split("**Table 2", 1)[0]
    return [line for line in section.splitlines() if line.startswith("- ")]


def test_report_shows_intervals_and_which_differences_are_inside_the_noise(results: Path) -> None:
    markdown = render_report(results)["markdown"].read_text(encoding="utf-8")
    table1, table2 = _paper_tables(markdown)
    assert table1[5]["avg"] == "5.00 ± 2.48"  # stage3
    assert all("±" not in cell for row in table2 for cell in row.values())  # Table 2: no per-track accuracies
    assert markdown.index("Table 1: separation") < markdown.index("Which differences are inside the noise") \
        < markdown.index("Table 2: transcription")
    assert "(`stage3`, the step-3 row with the highest avg)" in markdown
    # supervised - stage3 is 1.5 dB on every track: no width. stage3 - stage2 over bass and piano (stage2 has no
    # guitar): 2.125, 1.125, 0.125 dB (sd 1). stage2 - input mixture: 3.125, 5.625, 8.125 dB (sd 2.5).
    # The baseline has not run: the chain goes from stage2 straight to the input mixture.
    assert _difference_lines(markdown) == [
        "- `supervised` vs `stage3`: +1.50 dB [+1.50, +1.50] (95 % CI over 3 tracks): outside the noise "
        "(0 is not in the interval), a measurable difference",
        "- `stage3` vs `stage2` (bass, piano only): +1.12 dB [-1.36, +3.61] (95 % CI over 3 tracks): inside the "
        "noise (0 is in the interval), not a measurable difference",
        "- `stage2` vs `input_mixture` (bass, piano only): +5.62 dB [-0.59, +11.84] (95 % CI over 3 tracks): "
        "inside the noise (0 is in the interval), not a measurable difference",
    ]
    differences = table1_differences(load_results(results))
    assert [(d.first, d.second, d.tracks) for d in differences] == [
        ("supervised", "stage3", 3), ("stage3", "stage2", 3), ("stage2", "input_mixture", 3)]
    assert differences[1].mean == pytest.approx(1.125) and differences[1].half_width == pytest.approx(T3)
    assert differences[2].half_width == pytest.approx(2.5 * T3)
    assert "Which differences are inside the noise" in markdown_tables(results)


def test_the_best_stage3_row_and_the_baseline_join_the_chain(results: Path) -> None:
    atl = {"bass": 8.5, "guitar": 2.5, "piano": 5.5}  # avg 5.5 > stage3's 5.0 > stage3_noadv's 4.0
    _write(results, "stage3_atl", {"separation": _separation(atl)}, tracks=_tracks(atl))
    noadv = {"bass": 7.0, "guitar": 1.0, "piano": 4.0}
    _write(results, "stage3_noadv", {"separation": _separation(noadv)}, tracks=_tracks(noadv))
    baseline = {"bass": 5.0, "guitar": 0.0, "piano": 2.0}
    _write(results, "baseline", {"separation": _separation(baseline)}, tracks=_tracks(baseline, (0.0, 0.0, 0.0)))
    differences = table1_differences(load_results(results))
    assert [(d.first, d.second) for d in differences] == [
        ("supervised", "stage3_atl"), ("stage3_atl", "stage2"), ("stage2", "baseline"), ("baseline", "input_mixture")]
    assert differences[0].mean == pytest.approx(1.0) and differences[0].half_width == pytest.approx(0.0)
    markdown = render_report(results)["markdown"].read_text(encoding="utf-8")
    assert "(`stage3_atl`, the step-3 row with the highest avg)" in markdown
    table1, _ = _paper_tables(markdown)
    assert table1[8]["avg"] == "2.33 ± 0.00"  # the baseline: the same numbers on every track


def test_fewer_than_two_tracks_give_no_interval(tmp_path: Path) -> None:
    one = {"bass": 7.0, "guitar": 1.0, "piano": 4.0}
    _write(tmp_path, "stage2", {"separation": _separation(one)}, tracks=_tracks(one, (0.0,), input_spread=(0.0,)))
    _write(tmp_path, "supervised", {"separation": _separation(one)}, tracks=_tracks(one, (0.0,), input_spread=(0.0,)))
    paths = render_report(tmp_path)
    markdown = paths["markdown"].read_text(encoding="utf-8")
    table1, _ = _paper_tables(markdown)
    assert [table1[3][name] for name in ("bass", "avg")] == ["7.00 ± n/a", "4.00 ± n/a"]
    assert _difference_lines(markdown)[0] == ("- `supervised` vs `stage2`: +0.00 dB, n/a (1 common track with "
                                              "per-track results; an interval needs 2)")
    _, rows = _read_csv(paths["table1"])
    assert float(rows[3]["bass"]) == 7.0 and rows[3]["bass_ci95"] == "" and rows[3]["avg_ci95"] == ""


def test_tracks_that_disagree_with_the_summary_are_refused(results: Path) -> None:
    path = results / "evaluations" / "stage3.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["tracks"][0]["separation"]["piano"]["si_sdr"] += 0.3
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ReportError, match=r"summary\.separation\.piano\.si_sdr is 5\.0 but its 3 per-track") as caught:
        render_report(results)
    assert str(path) in str(caught.value)


def test_duplicate_or_unnamed_tracks_are_refused(results: Path) -> None:
    path = results / "evaluations" / "supervised.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["tracks"][1]["track"] = document["tracks"][0]["track"]
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ReportError, match="'Track01' appears twice"):
        render_report(results)
    del document["tracks"][1]["track"]
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ReportError, match=r"missing key 'tracks\[1\]\.track'"):
        render_report(results)


# ----------------------------------------------------------------------------------------------- gap closed


def test_gap_closed_known_answers() -> None:
    # The paper's step 2 (c-mix + h-mix): 5.0 dB avg between the input mixture's -2.3 and supervised 8.2.
    assert gap_closed(5.0, -2.3, 8.2) == pytest.approx(100 * 7.3 / 10.5)  # 69.5 %
    assert gap_closed(8.2, -2.3, 8.2) == 100.0 and gap_closed(-2.3, -2.3, 8.2) == 0.0
    assert gap_closed(-3.35, -2.3, 8.2) == pytest.approx(-10.0)  # worse than the mixture: below 0
    assert gap_closed(None, -2.3, 8.2) is None and gap_closed(5.0, None, 8.2) is None
    assert gap_closed(5.0, -2.3, None) is None
    assert gap_closed(1.0, 2.0, 2.0) is None and gap_closed(1.0, 2.0, 1.5) is None  # no gap to close


def test_table1_shows_the_gap_closed_ours_beside_the_papers(results: Path) -> None:
    paths = render_report(results)
    table1, table2 = _paper_tables(paths["markdown"].read_text(encoding="utf-8"))
    rows = dict(zip(TABLE1_ORDER, table1, strict=True))
    columns = ("gap closed", "gap closed (paper)", "guitar gap closed", "guitar gap closed (paper)")
    # Ours: input mixture avg (1.5 - 5.25 - 2) / 3 = -23/12, supervised 6.5; stage3 avg 5.0: (5 + 23/12) /
    # (6.5 + 23/12) = 82.2 %. Guitar: input -5.25, supervised 4.0, stage3 2.0: 7.25 / 9.25 = 78.4 %.
    # The paper's stage 3 (AML): (5.8 + 2.3) / 10.5 = 77.1 %, guitar (2.8 + 5.8) / 11.5 = 74.8 %.
    assert [rows["stage3"][name] for name in columns] == ["82 %", "77 %", "78 %", "75 %"]
    assert [rows["supervised"][name] for name in columns] == ["100 %", "100 %", "100 %", "100 %"]
    assert [rows["input_mixture"][name] for name in columns] == ["0 %", "0 %", "0 %", "0 %"]
    # stage2 has no guitar: no avg, so neither of its gaps; the paper's are there (70 %, 64 %).
    assert [rows["stage2"][name] for name in columns] == ["", "70 %", "", "64 %"]
    assert [rows["stage2_cmix"][name] for name in columns] == ["", "63 %", "", "61 %"]  # not run: the paper's only
    assert [rows["score_masks"][name] for name in columns] == ["", "", "", ""]  # not run, no paper numbers
    assert "gap closed" not in table2[0]
    _, csv_rows = _read_csv(paths["table1"])
    by_row = {row["row"]: row for row in csv_rows}
    assert float(by_row["stage3"]["gap_closed"]) == pytest.approx(100 * (5 + 23 / 12) / (6.5 + 23 / 12))
    assert float(by_row["stage3"]["guitar_gap_closed"]) == pytest.approx(100 * 7.25 / 9.25)
    assert float(by_row["stage2"]["gap_closed_paper"]) == pytest.approx(100 * 7.3 / 10.5)
    assert float(by_row["stage2"]["guitar_gap_closed_paper"]) == pytest.approx(100 * 7.4 / 11.5)
    assert by_row["stage2"]["gap_closed"] == "" and by_row["score_masks"]["gap_closed_paper"] == ""


def test_without_a_supervised_row_our_gap_cells_are_empty(results: Path) -> None:
    (results / "evaluations" / "supervised.json").unlink()
    table1, _ = _paper_tables(render_report(results)["markdown"].read_text(encoding="utf-8"))
    stage3 = table1[TABLE1_ORDER.index("stage3")]
    assert (stage3["gap closed"], stage3["gap closed (paper)"]) == ("", "77 %")


# ----------------------------------------------------------------------------------------------- rows beyond the paper


def _record_rows(folder: Path, rows: dict) -> None:
    record = {"preset": "mini", "seed": 0, "wall_seconds": 60.0, "rows": rows}
    (folder / "reproduce.json").write_text(json.dumps(record), encoding="utf-8")


def test_rows_beyond_the_paper_follow_the_papers_rows(results: Path) -> None:
    warm = {"bass": 8.5, "guitar": 3.0, "piano": 6.0}  # avg 17.5 / 3
    _write(results, "stage2_warm", {"separation": _separation(warm)}, tracks=_tracks(warm), reads_score=False)
    _write(results, "my_experiment", {"separation": _separation(warm)})  # not marked: still ignored
    config = results / "rows" / "stage2_warm" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("model:\n  class_path: scoresep.stages.SeparatorStage\n  init_args:\n"
                      "    clip_mix_weight: 0.1\n    harmonic_mix_weight: 0.0\n", encoding="utf-8")
    _record_rows(results, {"stage1": {"status": "done", "seconds": 60.0, "beyond_paper": False},
                           "stage2_warm": {"status": "done", "seconds": 120.0, "beyond_paper": True},
                           "stage2_failed": {"status": "failed", "seconds": 6.0, "beyond_paper": True},
                           "stage2": {"status": "done", "seconds": 6.0, "beyond_paper": True}})
    paths = render_report(results)
    markdown = paths["markdown"].read_text(encoding="utf-8")
    table1, table2 = _paper_tables(markdown)
    assert [row["training"] for row in table1][-2:] == [
        "score harmonic masks (no training; uses the test score)", "stage2_warm (beyond the paper)"]
    warm_row = table1[-1]
    assert [warm_row[name] for name in ("L_c-mix", "L_h-mix", "AML", "ATL")] == ["x", "", "", ""]
    assert (warm_row["bass"], warm_row["bass (paper)"], warm_row["avg (paper)"]) == ("8.50 ± 2.48", "", "")
    # (17.5 / 3 + 23 / 12) / (6.5 + 23 / 12) = 92.1 %; guitar (3 + 5.25) / 9.25 = 89.2 %.
    assert (warm_row["gap closed"], warm_row["gap closed (paper)"], warm_row["guitar gap closed"]) == (
        "92 %", "", "89 %")
    # stage2 stays the paper's row whatever the record says; a failed row without evaluation is not listed.
    assert [row["training"] for row in table1].count("step 2") == 3 and len(table1) == len(TABLE1_ORDER) + 1
    assert "stage2_warm" not in [row["training"] for row in table2]
    assert "4 of 10 rows evaluated; beyond the paper: `stage2_warm`" in markdown
    assert "ignored (not a row of the paper): `my_experiment.json`" in markdown
    times = next(table for table in _tables(markdown) if "minutes" in table[0])
    assert [(row["row"], row["training"]) for row in times] == [
        ("stage1", "step 1"), ("stage2_warm", "beyond the paper"), ("stage2_failed", "beyond the paper"),
        ("stage2", "step 2")]
    _, rows = _read_csv(paths["table1"])
    assert rows[-1]["row"] == "stage2_warm" and rows[-1]["bass_paper"] == "" and float(rows[-1]["bass"]) == 8.5
    # Without reproduce.json nothing says the row belongs in the table: ignored as before.
    (results / "reproduce.json").unlink()
    table1, _ = _paper_tables(render_report(results)["markdown"].read_text(encoding="utf-8"))
    assert len(table1) == len(TABLE1_ORDER)


def test_a_bad_beyond_paper_flag_is_named(results: Path) -> None:
    _record_rows(results, {"stage2_warm": {"status": "done", "beyond_paper": "yes"}})
    with pytest.raises(ReportError, match=r"reproduce.json: 'rows.stage2_warm.beyond_paper' must be true or false"):
        render_report(results)


def test_loss_marks_are_read_from_a_rows_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    assert config_loss_flags(path) == ()  # missing: no marks
    path.write_text("model:\n  init_args: {clip_mix_weight: 0.1, harmonic_mix_weight: 0.1, aml: true, "
                    "aml_weight: 0.1, atl: false}\n", encoding="utf-8")
    assert config_loss_flags(path) == ("L_c-mix", "L_h-mix", "AML")
    path.write_text("model:\n  init_args: {clip_mix_weight: 0.0, aml: true, aml_weight: 0.0, atl: true}\n",
                    encoding="utf-8")
    assert config_loss_flags(path) == ("ATL",)
    path.write_text("model: [unclosed\n", encoding="utf-8")
    assert config_loss_flags(path) == ()


# ----------------------------------------------------------------------------------------------- reads_score


def test_rows_that_read_the_test_score_are_marked(results: Path) -> None:
    masks = {"bass": 5.0, "guitar": 2.0, "piano": 3.0}
    _write(results, "score_masks", {"separation": _separation(masks)}, stage="score_masks")  # no field: reads it
    baseline = {"bass": 5.0, "guitar": 0.0, "piano": 2.0}
    _write(results, "baseline", {"separation": _separation(baseline)}, tracks=_tracks(baseline), reads_score=True)
    results_read = load_results(results)
    assert results_read.evaluations["score_masks"].reads_score is True
    assert results_read.evaluations["supervised"].reads_score is False  # an older file without the field
    markdown = render_report(results)["markdown"].read_text(encoding="utf-8")
    table1, _ = _paper_tables(markdown)
    labels = dict(zip(TABLE1_ORDER, (row["training"] for row in table1), strict=True))
    assert labels["score_masks"] == "score harmonic masks (no training; uses the test score)"  # said once
    assert labels["baseline"] == "baseline [16] classifier critic (reads the test score)"
    assert labels["stage2"] == "step 2"
    lines = _difference_lines(markdown)
    assert lines[2].startswith("- `stage2` vs `baseline` (`baseline` reads the test score) (bass, piano only): ")
    assert lines[3].startswith("- `baseline` vs `input_mixture` (`baseline` reads the test score) (bass, piano "
                               "only): ")
    assert "reads the test score" not in lines[0] + lines[1]


def test_a_bad_reads_score_is_named(results: Path) -> None:
    path = _write(results, "baseline", {"separation": _separation({"bass": 5.0, "guitar": 0.0, "piano": 2.0})},
                  reads_score="no")
    with pytest.raises(ReportError, match="'reads_score' must be true or false, got 'no'") as caught:
        render_report(results)
    assert str(path) in str(caught.value)


# ----------------------------------------------------------------------------------------------- seeds


@pytest.fixture
def seeds(results: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Two results folders on the same test tracks: the ``results`` fixture as seed 0, and seed 1 in which the
    best step-3 row is stage3_atl and the baseline ran; every row of seed 1 has the same per-track spread
    (-1/0/+1 dB), so its differences between trained rows are constant over tracks (interval of width 0)."""
    _record_rows(results, {})
    second = tmp_path / "seed1"
    for row, values in (("supervised", {"bass": 9.0, "guitar": 4.0, "piano": 6.5}),
                        ("stage3_atl", {"bass": 8.5, "guitar": 2.5, "piano": 5.5}),
                        ("stage2", {"bass": 7.0, "guitar": 1.0, "piano": 4.0}),
                        ("baseline", {"bass": 5.0, "guitar": 0.0, "piano": 2.0})):
        _write(second, row, {"separation": _separation(values)}, tracks=_tracks(values))
    (second / "reproduce.json").write_text(json.dumps({"preset": "mini", "seed": 1, "rows": {}}), encoding="utf-8")
    return results, second


def test_claims_across_seeds_say_in_how_many_seeds_each_holds(seeds: tuple[Path, Path]) -> None:
    first, second = seeds
    path = render_seeds([first, second])
    assert path == first / "seeds.md"
    text = path.read_text(encoding="utf-8")
    assert f"- seed 0: `{first}`" in text and f"- seed 1: `{second}`" in text
    # Seed 0 as in test_report_shows_intervals_...; seed 1: supervised - stage3_atl 1.0, stage3_atl - stage2 1.5,
    # stage2 - baseline 5/3 dB on every track; baseline - input mixture 2.75 / 4.25 / 5.75 dB (sd 1.5).
    assert [line for line in text.splitlines() if line.startswith("- ") and " > " in line] == [
        "- `supervised` > the best step-3 row: seed 0: +1.50 dB [+1.50, +1.50] (`stage3`); seed 1: +1.00 dB "
        "[+1.00, +1.00] (`stage3_atl`): holds in 2/2 seeds",
        "- the best step-3 row > `stage2`: seed 0: +1.12 dB (bass, piano only) [-1.36, +3.61] (`stage3`); seed 1: "
        "+1.50 dB [+1.50, +1.50] (`stage3_atl`): holds in 1/2 seeds",
        "- `stage2` > `baseline`: seed 0: not measured (a row has no separation results); seed 1: +1.67 dB "
        "[+1.67, +1.67]: holds in 1/2 seeds",
        "- `stage2` > `input_mixture`: seed 0: +5.62 dB (bass, piano only) [-0.59, +11.84]; seed 1: not measured "
        "(a row has no separation results): holds in 0/2 seeds",
        "- `baseline` > `input_mixture`: seed 0: not measured (a row has no separation results); seed 1: +4.25 dB "
        "[+0.52, +7.98]: holds in 1/2 seeds",
    ]
    claims = claims_across_seeds(load_seeds([first, second]))
    assert [claim.holds for claim in claims] == [2, 1, 1, 0, 1]
    assert claims[3].differences[0].half_width == pytest.approx(2.5 * T3)


def test_a_reversed_difference_does_not_hold(seeds: tuple[Path, Path]) -> None:
    first, second = seeds
    worse = {"bass": 10.0, "guitar": 5.0, "piano": 7.5}  # stage3_atl above supervised by 1 dB on every track
    _write(second, "stage3_atl", {"separation": _separation(worse)}, tracks=_tracks(worse))
    claims = claims_across_seeds(load_seeds([first, second]))
    assert claims[0].differences[1].mean == pytest.approx(-1.0) and claims[0].holds == 1


def test_seeds_that_cannot_be_compared_are_refused(seeds: tuple[Path, Path], tmp_path: Path) -> None:
    first, second = seeds
    with pytest.raises(ReportError, match="at least two results folders"):
        load_seeds([first])
    with pytest.raises(ReportError, match="are the same folder"):
        load_seeds([first, first])
    (second / "reproduce.json").write_text(json.dumps({"seed": 0}), encoding="utf-8")
    with pytest.raises(ReportError, match=r"are the same seed \(0\)"):
        load_seeds([first, second])
    third = tmp_path / "seed2"  # another test set: the input mixture differs
    other = {**INPUT, "bass": 2.5}
    _write(third, "stage2", {"separation": _separation({"bass": 7.0, "guitar": 1.0, "piano": 4.0}, other)})
    (third / "reproduce.json").write_text(json.dumps({"seed": 2}), encoding="utf-8")
    with pytest.raises(ReportError, match="differs between .* the seeds were evaluated on different test tracks"):
        load_seeds([first, third])


def test_the_report_command_takes_one_folder_per_seed(seeds: tuple[Path, Path], capsys) -> None:
    first, second = seeds
    main(["report", str(first), str(second)])
    printed = capsys.readouterr().out
    assert f"   seeds: {first / 'seeds.md'}" in printed
    assert (first / "report.md").is_file() and (second / "report.md").is_file() and (first / "seeds.md").is_file()
    assert "- seed: 1" in (second / "report.md").read_text(encoding="utf-8")  # the header names the seed
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(first), str(first)])
    assert exit_.value.code == 1 and "are the same folder" in capsys.readouterr().err
