"""Who said what: statements, their speakers and exact offsets, on small hand-written texts and the dev labels."""

from __future__ import annotations

from pathlib import Path

from rag.ingest.attribution import Statement, extract_statements
from rag.evaluation.attributions import Labelled, evaluate_attributions, score_attributions
from rag.ingest.speakers import merge_speakers, speaker_key

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT.parent / "shared" / "eval" / "dev_attributions.jsonl"


def found(text: str) -> list[Statement]:
    out = list(extract_statements(text))
    assert all(text[s.start:s.end] == s.text for s in out)
    return out


def pairs(text: str) -> list[tuple[str | None, str, str]]:
    return [(s.speaker, s.kind, s.text) for s in found(text)]


def test_a_quote_split_around_she_said_is_two_direct_statements_of_one_speaker() -> None:
    text = ("Finance Minister Maria Jensen spoke in Oslo on Monday.\n\n"
            "“The budget is balanced,” she said, “and it will stay that way.”")
    assert pairs(text) == [("Maria Jensen", "direct", "The budget is balanced"),
                           ("Maria Jensen", "direct", "and it will stay that way")]


def test_pronouns_and_surnames_resolve_to_the_full_name() -> None:
    text = ("Opposition leader Tomas Berg criticised the plan on Tuesday. Berg said the tax would hurt farmers. "
            "He added that his party would vote against it.")
    assert pairs(text) == [("Tomas Berg", "indirect", "the tax would hurt farmers"),
                           ("Tomas Berg", "indirect", "his party would vote against it")]


def test_a_title_resolves_to_the_person_the_article_gives_it() -> None:
    text = ("Talks will resume next week, Swedish Ambassador to Chile Anna Lind has said.\n\n"
            "The envoy stated that both sides had agreed to an agenda.")
    assert pairs(text) == [("Anna Lind", "indirect", "Talks will resume next week"),
                           ("Anna Lind", "indirect", "both sides had agreed to an agenda")]


def test_generic_sources_have_no_speaker_and_according_to_is_its_own_kind() -> None:
    text = ("Critics say the reform came too late. Prices rose by 4% in May, according to official figures. "
            "According to the ministry, exports fell.")
    assert pairs(text) == [(None, "indirect", "the reform came too late"),
                           (None, "according_to", "Prices rose by 4% in May"),
                           (None, "according_to", "exports fell")]


def test_two_people_with_one_surname_stay_apart() -> None:
    text = ("Mayor Anna Holm said the bridge would open in June. Her brother, local trader Erik Holm, said "
            "business had already fallen. Holm added that he would close his shop.")
    got = pairs(text)
    assert got[0] == ("Anna Holm", "indirect", "the bridge would open in June")
    assert got[1] == ("Erik Holm", "indirect", "business had already fallen")
    assert got[2][0] == "Erik Holm"  # the surname goes to the nearest full name before it


def test_a_paragraph_long_quote_goes_on_with_the_last_speaker_and_offsets_are_exact() -> None:
    text = ("Prefix line that is not part of the article.\n"
            "Coach Lena Park praised her players.\n\n"
            "“We trained for this all winter.”\n\n"
            "Scare quotes such as the “miracle” win are not statements.")
    start = text.index("Coach")
    got = list(extract_statements(text, [(start, len(text))]))
    assert [(s.speaker, s.kind, s.text) for s in got] == [("Lena Park", "direct",
                                                           "We trained for this all winter")]
    assert text[got[0].start:got[0].end] == got[0].text and got[0].start > start


def test_speakers_merge_across_articles_but_not_across_people() -> None:
    names = ["Lavrov", "Sergey Lavrov", "Russian Foreign Minister Sergey Lavrov", "Holm", "Anna Holm",
             "Erik Holm", None]
    merged = merge_speakers(names)
    assert merged["Lavrov"] == merged["Sergey Lavrov"] == merged["Russian Foreign Minister Sergey Lavrov"] == \
        "Sergey Lavrov"
    assert merged["Anna Holm"] != merged["Erik Holm"]
    assert merged["Holm"] == "Holm"  # two full names end with it: left alone
    assert speaker_key("the Financial Times") == speaker_key("Financial Times")


def test_scoring_matches_by_half_the_gold_span_and_null_speakers_need_no_speaker() -> None:
    gold = [Labelled("Ann Lee", "direct", 0, 10), Labelled(None, "indirect", 20, 30),
            Labelled("Bo Ek", "according_to", 40, 50)]
    predicted = [Labelled("Ann Lee", "direct", 4, 12), Labelled("Critics", "indirect", 20, 30),
                 Labelled("Bo Ek", "indirect", 46, 60), Labelled(None, "indirect", 70, 80)]
    report = score_attributions(predicted, gold)
    assert report["matched"] == 2 and report["recall"] == round(2 / 3, 4) and report["precision"] == 0.5
    assert report["speaker_accuracy"] == 0.5  # "Critics" for a null gold speaker is wrong
    assert report["per_kind"]["according_to"]["recall"] == 0.0


def test_dev_labels_score_above_the_measured_floor() -> None:
    report = evaluate_attributions(LABELS, ROOT / "seeds")
    assert report["gold"] == 121
    # measured: precision 1.0, recall 0.98, speaker accuracy 0.96 (rules fitted on this file: held-out is lower)
    assert report["precision"] >= 0.95 and report["recall"] >= 0.95 and report["speaker_accuracy"] >= 0.92
