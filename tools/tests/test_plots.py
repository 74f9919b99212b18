"""tools/plots.py: a PNG from small CSVs, and clear errors for bad input."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOOLS))

import plots  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND"
    return struct.unpack(">II", data[16:24])


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


PPL = "bucket,start,end,tokens,nll,ppl\n0,0,512,511,3.2,24.5\n1,512,1024,512,3.4,30.0\n"
PASSKEY = "length,depth,samples,accuracy\n1024,0,2,1.0\n1024,50,2,0.5\n2048,0,1,0.0\n"
SCALE = ("manifest,prompt_tokens,decode_ms_per_token,peak_rss_mb\n"
         "m/a.yaml,1024,10,100\nm/a.yaml,2048,12,150\nm/b.yaml,1024,8,90\n")


def test_ppl_writes_a_png(tmp_path):
    a = write(tmp_path / "a.csv", PPL)
    b = write(tmp_path / "b.csv", PPL.replace("30.0", "60.0"))
    out = tmp_path / "fig" / "ppl.png"
    assert plots.main(["ppl", a, f"{b}=second", "--trained", "512", "--out", str(out)]) == 0
    width, height = png_size(out)
    assert 600 <= width <= 2000 and 300 <= height <= 1500
    assert out.stat().st_size > 10_000  # lines, legend and labels, not an empty canvas


def test_passkey_and_scale_write_pngs(tmp_path):
    out = tmp_path / "passkey.png"
    assert plots.main(["passkey", write(tmp_path / "p.csv", PASSKEY), "--out", str(out)]) == 0
    assert png_size(out)[0] > 300
    out = tmp_path / "scale.png"
    assert plots.main(["scale", write(tmp_path / "s.csv", SCALE), "--out", str(out)]) == 0
    assert png_size(out)[0] > 600


def test_a_stretch_eval_out_directory_is_accepted(tmp_path):
    run = tmp_path / "yarn"
    run.mkdir()
    write(run / "ppl.csv", PPL)
    series = plots.read_ppl(str(run))
    assert series.label == "yarn" and [r["end"] for r in series.rows] == [512, 1024]


@pytest.mark.parametrize("text, line, words", [
    (PPL.replace("3.4,30.0", "3.4,thirty"), 3, "'thirty' is not a number"),
    (PPL.replace("0,0,512", "0,zero,512"), 2, "'zero' is not an integer"),
    (PPL + "2,1024,1536,512,3.1\n", 4, "column 'ppl' is empty"),
    (PPL + "2,1024,1536,512,3.1,22,extra\n", 4, "more cells"),
    ("bucket,start,end\n0,0,512\n", 1, "lacks column(s) tokens, nll, ppl"),
])
def test_malformed_csv_names_file_and_line(tmp_path, capsys, text, line, words):
    bad = write(tmp_path / "bad.csv", text)
    assert plots.main(["ppl", bad, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:{line}:" in err and words in err
    assert not (tmp_path / "x.png").exists()


def test_missing_input_and_out_of_range_accuracy(tmp_path, capsys):
    assert plots.main(["ppl", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x.png")]) == 2
    assert "nope.csv: no such file" in capsys.readouterr().err
    bad = write(tmp_path / "p.csv", PASSKEY.replace("1024,50,2,0.5", "1024,50,2,50"))
    assert plots.main(["passkey", bad, "--out", str(tmp_path / "x.png")]) == 2
    assert f"{bad}:3: accuracy 50.0 is outside 0..1" in capsys.readouterr().err


def test_all_regenerates_the_docs_figures(tmp_path):
    assert plots.main(["all", "--figures", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passkey-readers.png",
                                                          "passkey-template2.png", "passkey.png",
                                                          "ppl-32768.png", "scale.png"]
    for png in tmp_path.iterdir():
        png_size(png)


def test_token_counts_read_as_k_and_m():
    from plotting.charts import tokens_label
    assert [tokens_label(n) for n in (512, 8192, 131072, 1048576, 1536)] == \
        ["512", "8k", "128k", "1M", "1.5k"]
