"""The report: the paper's two tables rebuilt from hand-written evaluation files, with known numbers in known cells."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from scoresep.report import ReportError, markdown_tables, render_report

INSTRUMENTS = ("bass", "guitar", "piano")
INPUT = {"bass": 1.5, "guitar": -5.25, "piano": -2.0}
TABLE1_ORDER = ("supervised", "stage2_cmix", "stage2_hmix", "stage2", "stage3_noadv", "stage3", "stage3_atl",
                "input_mixture", "baseline")
TABLE2_ORDER = ("stage1", "stage3_noadv", "stage3", "stage3_atl")


def _separation(si_sdr: dict[str, float | None], inputs: dict[str, float | None] = INPUT) -> dict:
    section = {name: {"si_sdr": value, "input_si_sdr": inputs[name],
                      "si_sdri": None if value is None else value - inputs[name], "tracks": 7}
               for name, value in si_sdr.items()}
    # Deliberately not the mean over instruments: the report must compute its own avg column.
    section["average"] = {"si_sdr": 99.0, "input_si_sdr": 99.0, "si_sdri": 99.0}
    return section


def _transcription(mix: dict[str, float | None], iso: dict[str, float | None]) -> dict:
    def per(accuracy: dict[str, float | None]) -> dict:
        return {name: {"accuracy": value, "precision": 0.5, "recall": 0.5, "f1": 0.5}
                for name, value in accuracy.items()}
    return {"mix": per(mix), "iso": per(iso)}


def _write(folder: Path, row: str, summary: dict, stage: str = "separator", instruments=INSTRUMENTS) -> Path:
    path = folder / "evaluations" / f"{row}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"format": 1, "checkpoint": f"checkpoints/{row}/best.ckpt", "stage": stage, "split": "test",
                "data": "data/minislakh", "instruments": list(instruments), "tracks": [{"ignored": True}],
                "summary": summary}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Four rows evaluated (stage2 with a null, stage3 with a null accuracy), the other six missing."""
    folder = tmp_path / "results"
    _write(folder, "supervised", {"separation": _separation({"bass": 9.0, "guitar": 4.0, "piano": 6.5})})
    _write(folder, "stage2", {"separation": _separation({"bass": 7.25, "guitar": None, "piano": 3.5})})
    _write(folder, "stage1", {"transcription": _transcription({"bass": 0.8, "guitar": 0.4, "piano": 0.5},
                                                               {"bass": 0.9, "guitar": 0.45, "piano": 0.625})},
           stage="transcriptor")
    _write(folder, "stage3", {"separation": _separation({"bass": 8.0, "guitar": 2.0, "piano": 5.0}),
                              "transcription": _transcription({"bass": 0.812, "guitar": 0.41, "piano": 0.51},
                                                              {"bass": 0.91, "guitar": None, "piano": 0.61})},
           stage="adversarial")
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
        "step 3 fine-tune", "input mixture", "baseline [16] classifier critic"]
    supervised, cmix, _, stage2, _, stage3, atl, mixture, _ = table1
    assert (supervised["bass"], supervised["bass (paper)"]) == ("9.00", "11.10")
    assert (supervised["avg"], supervised["avg (paper)"]) == ("6.50", "8.20")  # (9 + 4 + 6.5) / 3, not the 99 given
    assert (stage2["guitar"], stage2["avg"], stage2["piano"]) == ("—", "—", "3.50")  # null guitar: avg undefined
    assert (stage3["L_c-mix"], stage3["L_h-mix"], stage3["AML"], stage3["ATL"]) == ("x", "x", "x", "")
    assert (atl["AML"], atl["ATL"], atl["piano (paper)"]) == ("", "x", "5.70")
    assert (cmix["L_c-mix"], cmix["L_h-mix"]) == ("x", "")
    assert (cmix["bass"], cmix["avg"], cmix["bass (paper)"]) == ("not run", "not run", "7.50")
    # The input mixture comes from input_si_sdr, not from si_sdr: 1.5, -5.25, -2.0 -> avg -1.92.
    assert [mixture[name] for name in ("bass", "guitar", "piano", "avg")] == ["1.50", "-5.25", "-2.00", "-1.92"]
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
                      "bass_paper", "guitar_paper", "piano_paper", "avg_paper", "source"]
    assert [row["row"] for row in rows] == list(TABLE1_ORDER)
    by_row = {row["row"]: row for row in rows}
    assert float(by_row["supervised"]["bass"]) == 9.0 and float(by_row["supervised"]["bass_paper"]) == 11.1
    assert by_row["stage2"]["guitar"] == "" and by_row["stage2"]["avg"] == ""
    assert float(by_row["input_mixture"]["guitar"]) == -5.25 and by_row["input_mixture"]["source"] == "stage2.json"
    assert [by_row["baseline"][name] for name in ("bass", "avg", "source")] == ["", "", ""]
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
    assert (table1[3]["strings"], table1[3]["strings (paper)"], table1[3]["avg"]) == ("0.00", "", "3.00")
    assert table1[7]["strings"] == "-8.00"
    _, rows = _read_csv(paths["table1"])
    assert rows[3]["strings_paper"] == "" and float(rows[3]["bass_paper"]) == 8.4


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
    assert float(rows[-1]["bass"]) == 5.0 and float(rows[7]["piano"]) == -2.0


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
    assert table2[0]["bass"] == "0.800"
    with Image.open(paths["chart"]) as image:
        assert image.size == (720, 540)  # an empty chart, 6 x 4.5 inches, with a "no separation results" note
