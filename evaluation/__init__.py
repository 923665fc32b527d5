"""Evaluation: ask a benchmark's questions of an index and measure how often the right passage comes back.

    questions = read_questions("squad-dev-v1.1.json")
    report = evaluate(Retriever.open("squad.idx"), questions, modes=["dense", "hybrid"])
    print(report.table())

Questions come from SQuAD, DPR TSV, NQ-open JSONL or a BEIR folder (`questions`); the metrics follow DPR,
SQuAD and BEIR exactly (`metrics`), so the figures can be set beside published ones.
"""

from evaluation.errors import EvaluationError
from evaluation.questions import QUESTION_FORMATS, Question, read_questions
from evaluation.runner import MODES, EvaluationReport, check_options, check_request, evaluate, parse_modes

__all__ = [
    "MODES",
    "QUESTION_FORMATS",
    "EvaluationError",
    "EvaluationReport",
    "Question",
    "check_options",
    "check_request",
    "evaluate",
    "parse_modes",
    "read_questions",
]
