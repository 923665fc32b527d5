"""Fit the match-confidence model (retriever.confidence) of one embedding model, and measure it on held-out data.

    .venv/bin/python bench/calibrate.py --work /tmp/gs-calibrate            # the default model
    .venv/bin/python bench/calibrate.py --model /path/to/model --out index_build/calibrations/mine.json

Data: SQuAD dev part A split by article. The even-numbered articles are indexed (`answerable.json`); the
questions of the odd-numbered ones have no answer in that index (`unanswerable.json`). The questions are split
again into those that fit and those that only measure: by paragraph (the default: questions of even-numbered
paragraphs fit, of odd-numbered ones measure, so every article is on both sides) or with `--split article` by
article (measured only on articles the fit never saw; with 6 articles a side, the bar then mostly measures
which articles landed where: see the README).

A hit is relevant when it is a passage of the question's gold paragraph. Per mode, a logistic model is fitted on
the top-k hits of every fitting question, and the mode's bar (`threshold`) is the highest that flags at most
`--max-flagged` of the fitting answerable questions. Prints a table; writes the calibration JSON that builds
with this model copy into their manifests.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.abstention import abstention, auroc  # noqa: E402
from evaluation.questions import Question, read_questions  # noqa: E402
from index_build.calibration import CALIBRATIONS_DIR, choose_threshold, fit_logistic  # noqa: E402
from retriever import Retriever  # noqa: E402
from retriever.confidence import CALIBRATION_VERSION, FEATURES, Calibration, ModeWeights  # noqa: E402

SQUAD = ROOT / "tests" / "data" / "squad" / "squad-dev-v1.1-part-a.json"


def split_files(squad: Path, work: Path) -> tuple[Path, Path]:
    """answerable.json (even articles) and unanswerable.json (odd articles), in SQuAD's own layout."""
    data = json.loads(squad.read_text(encoding="utf-8"))
    answerable, unanswerable = work / "answerable.json", work / "unanswerable.json"
    for path, articles in ((answerable, data["data"][0::2]), (unanswerable, data["data"][1::2])):
        path.write_text(json.dumps({"version": data.get("version", "1.1"), "data": articles}), encoding="utf-8")
    return answerable, unanswerable


def article_of(question: Question) -> int:
    """The question's article position in its file, from its gold paragraph id ("article.paragraph")."""
    return int(question.gold_documents[0].split(".")[0])


def paragraph_of(question: Question) -> int:
    """The question's paragraph position in its article."""
    return int(question.gold_documents[0].split(".")[1])


def unanswered(question: Question) -> Question:
    """The question with a gold id that no indexed passage has: every hit it gets is irrelevant."""
    return Question(question.qid, question.text, gold_documents=("-",))


def collect(
    retriever: Retriever, questions: list[Question], mode: str, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features and relevance labels of every question's top-k hits, and each row's question number (a lexical
    search may return fewer than k hits, or none)."""
    rows: list[list[float]] = []
    labels: list[int] = []
    owners: list[int] = []
    texts = [q.text for q in questions]
    for start in range(0, len(texts), 256):
        batch = retriever.search_evidence(texts[start : start + 256], k, mode=mode)
        for number, (question, found) in enumerate(zip(questions[start : start + 256], batch, strict=True), start):
            for hit, evidence in found:
                rows.append(evidence.features(mode))
                labels.append(int(hit.source_id in question.gold_documents))
                owners.append(number)
    width = len(FEATURES[mode])
    return np.asarray(rows, float).reshape(-1, width), np.asarray(labels), np.asarray(owners, int)


def best_per_question(weights: ModeWeights, features: np.ndarray, owners: np.ndarray, questions: int) -> np.ndarray:
    """Each question's best hit confidence; 0 for a question without hits."""
    z = features @ np.asarray(weights.weights) + weights.bias
    return raw_best(1.0 / (1.0 + np.exp(-z)), owners, questions)


def raw_best(values: np.ndarray, owners: np.ndarray, questions: int) -> np.ndarray:
    """Each question's highest value of one piece of evidence; 0 for a question without hits."""
    best = np.zeros(questions)
    np.maximum.at(best, owners, values)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gs-calibrate"))
    parser.add_argument("--model", default=None, help="the build's --model (default: the project's default)")
    parser.add_argument("--out", type=Path, default=None, help="calibration JSON (default: calibrations/<model>.json)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-flagged", type=float, default=0.05, help="share of answerable questions to flag")
    parser.add_argument(
        "--split", choices=("paragraph", "article"), default="paragraph", help="how fitting and reported questions part"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the table, write nothing")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    answerable_file, unanswerable_file = split_files(args.squad, args.work)
    bundle = args.work / "answerable.idx"
    if not (bundle / "manifest.json").exists():
        command = [sys.executable, "-m", "groundsearch", "build", str(answerable_file), "--out", str(bundle), "--force"]
        subprocess.run([*command, *(["--model", args.model] if args.model else [])], check=True)
    retriever = Retriever.open(bundle)
    answerable = read_questions(answerable_file)
    unanswerable = read_questions(unanswerable_file)
    position = paragraph_of if args.split == "paragraph" else article_of
    fit_a = [q for q in answerable if position(q) % 2 == 0]
    held_a = [q for q in answerable if position(q) % 2 == 1]
    # Unanswerable questions keep their own file's positions for the split; their gold ids name nothing indexed.
    fit_u = [unanswered(q) for q in unanswerable if position(q) % 2 == 0]
    held_u = [unanswered(q) for q in unanswerable if position(q) % 2 == 1]

    modes: dict[str, ModeWeights] = {}
    report: dict[str, Any] = {}
    parts = {"fit_a": fit_a, "fit_u": fit_u, "held_a": held_a, "held_u": held_u}
    print(f"split by {args.split}: fit on {len(fit_a)} answerable + {len(fit_u)} unanswerable questions, ", end="")
    print(f"report on {len(held_a)} + {len(held_u)}; at most {args.max_flagged:.0%} of fitting answerable flagged")
    print(f"{'mode':8} {'bar':>6} {'AUROC':>6} {'flagged answerable':>19} {'flagged unanswerable':>21}")
    for mode in FEATURES:
        found = {name: collect(retriever, questions, mode, args.k) for name, questions in parts.items()}
        x_fit = np.vstack([found["fit_a"][0], found["fit_u"][0]])
        y_fit = np.concatenate([found["fit_a"][1], found["fit_u"][1]])
        w, b = fit_logistic(x_fit, y_fit)
        unbarred = ModeWeights(FEATURES[mode], tuple(round(float(v), 6) for v in w), round(b, 6), 0.0)
        best = {
            name: best_per_question(unbarred, x, owners, len(parts[name])) for name, (x, _, owners) in found.items()
        }
        bar = round(choose_threshold(best["fit_a"].tolist(), args.max_flagged), 6)
        modes[mode] = ModeWeights(unbarred.features, unbarred.weights, unbarred.bias, bar)
        figures = abstention(mode, best["held_a"].tolist(), best["held_u"].tolist(), bar)
        report[mode] = {key: round(v, 4) if isinstance(v, float) else v for key, v in figures.to_dict().items()}
        print(
            f"{mode:8} {bar:6.3f} {figures.auroc:6.3f} {figures.flagged_answerable:19.1%} "
            f"{figures.flagged_unanswerable:21.1%}"
        )
        if mode == "hybrid":  # what each piece of evidence alone would give, for comparison
            for column, name in enumerate(FEATURES[mode]):
                alone = {
                    part: raw_best(found[part][0][:, column], found[part][2], len(parts[part]))
                    for part in ("held_a", "held_u")
                }
                print(f"  {name} alone: AUROC {auroc(alone['held_a'].tolist(), alone['held_u'].tolist()):.3f}")
    manifest = retriever.manifest
    calibration = Calibration(
        modes=modes,
        model_weights_sha256=manifest.model.weights_sha256,
        fitted_on=(
            f"{args.squad.name}, split by {args.split}: top-{args.k} hits of {len(fit_a)} questions answerable from "
            f"an index of the even-numbered articles and {len(fit_u)} of the odd-numbered ones (bench/calibrate.py)"
        ),
        version=CALIBRATION_VERSION,
        report={"held_out": report, "model": manifest.model.name, "split": args.split},
    )
    out = args.out or CALIBRATIONS_DIR / f"{Path(manifest.model.name).name}.json"
    if not args.dry_run:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(calibration.to_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
