"""The answer analyser (chat/coach/analysis.py): STAR spans, fillers, flags, fluency."""

from __future__ import annotations

import json

import pytest

from chat.coach import evaluation, evaluation_report
from chat.coach.analysis import HIGHLIGHT_KINDS, MISSING_FLAGS, analyse, resolve_overlaps
from chat.coach.baseline import baseline_analyse, positional_star


def parts_text(answer: str, part: str) -> list[str]:
    found = analyse(answer)
    return [found.text(s) for s in found.star[part]]


def filler_forms(text: str) -> list[str]:
    return [f.form for f in analyse(text, category="conversation").fillers]


# ---------------------------------------------------------------------------- fillers


@pytest.mark.parametrize(
    ("text", "forms"),
    [
        ("Um, I was nervous.", ["um"]),
        ("It was, uh, late. Er, then we left. Umm okay.", ["uh", "er", "um"]),
        ("Basically I actually did it.", ["basically", "actually"]),
        ("It was, like, really hard.", ["like"]),
        ("Like, we had no time.", ["like"]),
        ("It was like really bad.", ["like"]),
        ("The client was angry, you know.", ["you know"]),
        ("You know, the client was angry.", ["you know"]),
        ("I mean, it was fine.", ["i mean"]),
        ("I sort of fixed it and I was kind of tired.", ["sort of", "kind of"]),
    ],
)
def test_fillers_are_found_with_their_form(text: str, forms: list[str]) -> None:
    assert filler_forms(text) == forms


@pytest.mark.parametrize(
    "text",
    [
        "I like football.",
        "We started something like a reading club.",
        "What kind of bug was it?",
        "This sort of thing happens.",
        "Do you know the answer?",
        "You know how to cook it.",
        "What I mean is that we failed.",
        "I mean it.",
        "I would like to travel to a place like Jeju.",
        "I felt like giving up, but people like my manager helped.",
        "Like I said, it was late.",
    ],
)
def test_words_used_for_their_meaning_are_not_fillers(text: str) -> None:
    assert filler_forms(text) == []


def test_filler_offsets_point_at_the_filler() -> None:
    answer = "So I called, um, the client, like, twice."
    found = analyse(answer)
    assert [(answer[f.start : f.end], f.form) for f in found.fillers] == [
        ("um", "um"),
        ("like", "like"),
    ]


# ---------------------------------------------------------------------------- STAR


STRONG = (
    "Last year at my internship, our checkout page kept crashing and I had to find out why "
    "before the sale. So I reproduced the crash locally, and then I traced it to a race "
    "condition. I wrote a fix and added tests. As a result, crashes dropped by 90% and the "
    "sale went ahead on time."
)


def test_a_complete_answer_has_every_part_and_no_flags() -> None:
    found = analyse(STRONG, "Tell me about a time you solved a difficult problem.")
    assert all(found.star[p] for p in ("situation", "task", "action", "result"))
    assert found.missing == []
    assert parts_text(STRONG, "result") == [
        "As a result, crashes dropped by 90% and the sale went ahead on time."
    ]


def test_situation_and_task_can_share_one_sentence() -> None:
    answer = (
        "When I was at university, I wanted to improve my English speaking, so I joined a "
        "conversation club and I practised every week. After six months I got a higher score."
    )
    assert parts_text(answer, "situation") == ["When I was at university"]
    assert parts_text(answer, "task") == ["I wanted to improve my English speaking"]


def test_a_part_split_mid_sentence_keeps_its_clauses() -> None:
    answer = (
        "Last year at my internship, our checkout page kept crashing and I had to fix it. "
        "I traced the bug and fixed it. Crashes dropped by half."
    )
    # The situation runs on past the comma; the task starts mid-sentence.
    assert parts_text(answer, "situation") == [
        "Last year at my internship, our checkout page kept crashing"
    ]
    assert parts_text(answer, "task") == ["and I had to fix it."]


def test_spans_are_offsets_into_the_answer() -> None:
    found = analyse(STRONG)
    for spans in found.star.values():
        for start, end in spans:
            assert 0 <= start < end <= len(STRONG)
            assert STRONG[start:end].strip() == STRONG[start:end]


def test_an_answer_without_a_result_is_flagged_result() -> None:
    answer = (
        "At my part-time job in a bakery, the oven stopped working on a Saturday. I had to "
        "keep the shop open. I called the manager and I moved the orders to our other shop."
    )
    found = analyse(answer)
    assert found.missing == ["result"]


def test_missing_situation_task_and_action_are_flagged() -> None:
    assert "situation" in analyse("I had to migrate the database. I copied it at night.").missing
    only_situation = (
        "At my last job there was a designer who changed the plan at the last minute. "
        "It was stressful."
    )
    missing = analyse(only_situation).missing
    assert {"task", "action", "result"} <= set(missing)


def test_we_throughout_is_flagged_personal_contribution() -> None:
    answer = (
        "We had a big project at school. We divided the work and we met every week. In the "
        "end we finished it and the professor was happy."
    )
    found = analyse(answer)
    assert "personal_contribution" in found.missing
    assert [found.text(s) for s in found.we] == [
        "We had a big project at school.",
        "We divided the work and we met every week.",
        "In the end we finished it and the professor was happy.",
    ]


def test_saying_what_i_did_clears_personal_contribution() -> None:
    answer = (
        "Last year our website went down during a sale. We had to bring it back. I rolled "
        "back the last update and we restarted the servers. It worked again in ten minutes."
    )
    assert "personal_contribution" not in analyse(answer).missing


def test_a_result_without_a_number_is_flagged_measurable_result() -> None:
    answer = (
        "At my previous job the reports were slow. I was asked to improve them. I rewrote "
        "the main query. As a result the reports became much faster."
    )
    assert "measurable_result" in analyse(answer).missing


@pytest.mark.parametrize(
    "result",
    [
        "We sorted the donations twice as fast as the year before.",
        "We cut the printing cost in half.",
        "In the end I led a team of four volunteers.",
        "As a result the report took 20% less time.",
    ],
)
def test_spelled_out_numbers_count_as_measurable(result: str) -> None:
    answer = (
        "Last year I volunteered at a food bank. We needed to sort donations faster. "
        f"I set up a simple line and I made labels for every shelf. {result}"
    )
    assert "measurable_result" not in analyse(answer).missing


@pytest.mark.parametrize(
    "answer",
    [
        "I would talk to the person first and try to understand their view. I always listen.",
        "I usually plan my work carefully. If something goes wrong, I tell my manager early.",
    ],
)
def test_hypothetical_or_generic_answers_are_flagged_specific_example(answer: str) -> None:
    found = analyse(answer, "Describe a time you disagreed with a teammate.")
    assert "specific_example" in found.missing
    assert found.star["action"] == []


def test_a_real_occasion_is_not_flagged_specific_example() -> None:
    assert "specific_example" not in analyse(STRONG).missing


def test_a_question_that_is_not_behavioural_gets_no_star_flags() -> None:
    answer = "I want this role because I enjoy building products that people use every day."
    found = analyse(answer, "Why do you want this role, and why now?")
    assert found.behavioural is False
    assert found.missing == []


# ---------------------------------------------------------------------------- other measures


def test_hedges_are_found_with_spans() -> None:
    answer = "I think it was maybe two years ago, and I guess it probably worked."
    found = analyse(answer)
    assert [found.text(s) for s in found.hedges] == ["I think", "maybe", "I guess", "probably"]


def test_words_and_pace_are_counted() -> None:
    found = analyse("I fixed the bug in two days, and it's still fixed.", duration_seconds=6)
    assert found.words == 11
    assert found.words_per_minute == 110.0
    assert analyse("One two three.").words_per_minute is None


def test_small_talk_gets_fluency_and_never_star_flags() -> None:
    answer = "Yesterday I go to the park with my freind. I have saw a movie. I am agree."
    found = analyse(answer, "What do you usually do on weekends?", category="conversation")
    assert found.missing == []
    assert all(spans == [] for spans in found.star.values())
    assert [(c.original, c.corrected) for c in found.grammar] == [
        ("I go", "I went"),
        ("have saw", "have seen"),
        ("I am agree", "I agree"),
    ]
    assert [(c.original, c.corrected) for c in found.spelling] == [("freind", "friend")]
    assert 0 < found.vocabulary_variety <= 1


def test_spelling_skips_names_and_places() -> None:
    found = analyse("I visited Jeju and Busan with Minji.", category="conversation")
    assert found.spelling == []


@pytest.mark.parametrize(
    "answer",
    [
        "On weekends I go to the park and we eat lunch.",
        "Last year was hard, but now I am happy.",
        "Yesterday I have to work late.",
    ],
)
def test_present_tense_that_fits_is_not_corrected(answer: str) -> None:
    assert analyse(answer, category="conversation").grammar == []


def test_a_symptom_history_reports_what_it_covers() -> None:
    full = analyse(
        "It started three days ago. I have a sharp pain in my back, seven out of ten, "
        "and it has lasted all day.",
        category="medical",
    )
    assert full.history_missing == []
    partial = analyse("I have a headache and I feel sick.", category="medical")
    assert partial.history_missing == ["onset", "duration", "severity"]
    assert partial.history["location"] and partial.history["associated"]
    assert partial.missing == []


# ---------------------------------------------------------------------------- highlights


def test_highlights_never_overlap_and_fillers_cut_star_parts() -> None:
    answer = (
        "Um, when I was working at a cafe, a customer was angry, and my job was to calm her "
        "down. I apologised and, uh, I made a new drink. I think she left a good review."
    )
    marks = analyse(answer).highlights()
    assert {kind for kind, _, _ in marks} <= set(HIGHLIGHT_KINDS)
    for (_, _, end), (_, start, _) in zip(marks, marks[1:], strict=False):
        assert end <= start
    kinds = {answer[s:e]: kind for kind, s, e in marks}
    assert kinds["uh"] == "filler"
    assert kinds["I think"] == "hedge"
    # The action is cut around the filler inside it: two pieces, both "action".
    assert [answer[s:e] for kind, s, e in marks if kind == "action"] == [
        "I apologised and",
        "I made a new drink.",
    ]


def test_we_sentences_are_highlighted_only_when_personal_contribution_is_missing() -> None:
    we_only = analyse("We had a project at school. We divided the work. We finished it.")
    assert any(kind == "we" for kind, _, _ in we_only.highlights())
    assert all(kind != "we" for kind, _, _ in analyse(STRONG).highlights())


def test_resolve_overlaps_keeps_the_higher_kind() -> None:
    text = "abcdefghij"
    marks = resolve_overlaps(text, [("action", 0, 10), ("filler", 3, 5), ("hedge", 4, 7)])
    assert marks == [("action", 0, 3), ("filler", 3, 5), ("hedge", 5, 7), ("action", 7, 10)]


def test_to_dict_is_json_with_every_part() -> None:
    data = analyse(STRONG).to_dict()
    star = data["star"]
    assert isinstance(star, dict)
    assert set(star) == {"situation", "task", "action", "result"}
    assert json.loads(json.dumps(data)) == data


def test_analysis_is_deterministic() -> None:
    assert analyse(STRONG).to_dict() == analyse(STRONG).to_dict()


# ---------------------------------------------------------------------------- baseline


def test_baseline_labels_sentences_by_position() -> None:
    answer = "One. Two. Three. Four. Five."
    star = positional_star(answer)
    assert star == {
        "situation": [(0, 4)],
        "task": [(5, 9)],
        "action": [(10, 16), (17, 22)],
        "result": [(23, 28)],
    }


def test_baseline_counts_every_filler_word() -> None:
    assert [f.form for f in baseline_analyse("I like football, you know.").fillers] == [
        "like",
        "you know",
    ]


# ---------------------------------------------------------------------------- labelled set


@pytest.fixture(scope="module")
def labelled() -> list[evaluation.Example]:
    return evaluation.load_examples()


def test_labelled_set_covers_every_flag_and_filler(labelled: list[evaluation.Example]) -> None:
    assert len(labelled) >= 40
    flags = {flag for e in labelled for flag in e.missing}
    assert flags == set(MISSING_FLAGS)
    forms = {f.form for e in labelled for f in e.fillers}
    assert forms == set(evaluation.FILLER_FORMS)
    assert {e.category for e in labelled} == {"interview", "conversation", "medical"}


def test_analyser_beats_the_baseline_on_weak_answers(labelled: list[evaluation.Example]) -> None:
    weak = [e for e in labelled if e.weak]
    analyser = evaluation.macro_f1(evaluation.evaluate(weak, evaluation.run_analyser))
    baseline = evaluation.macro_f1(evaluation.evaluate(weak, evaluation.run_baseline))
    # Measured: 0.93 vs 0.46.
    assert analyser >= 0.85
    assert analyser - baseline >= 0.3


def test_analyser_star_parts_and_fillers_reach_measured_levels(
    labelled: list[evaluation.Example],
) -> None:
    scores = evaluation.evaluate(labelled, evaluation.run_analyser)
    # Measured on all answers: precision 93-98 %, recall 85-98 % per part.
    for part, counts in scores["star"].items():
        assert (counts.precision or 0) >= 0.9, part
        assert (counts.recall or 0) >= 0.8, part
    fillers = scores["fillers"]["all"]
    assert (fillers.precision or 0) >= 0.95 and (fillers.recall or 0) >= 0.95
    # Measured: every flag's F1 is at least 0.8.
    for flag, counts in scores["missing"].items():
        assert (counts.f1 or 0) >= 0.75, flag


def test_analyser_beats_the_baseline_on_held_out_answers() -> None:
    held_out = evaluation.load_examples(evaluation.HELD_OUT)
    analyser = evaluation.macro_f1(evaluation.evaluate(held_out, evaluation.run_analyser))
    baseline = evaluation.macro_f1(evaluation.evaluate(held_out, evaluation.run_baseline))
    # Measured: 0.69 vs 0.47 (answers never used to tune the rules).
    assert analyser - baseline >= 0.15


def test_a_label_that_is_not_in_the_answer_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the answer"):
        evaluation.parse_example(
            {"id": "x", "answer": "I fixed it.", "star": {"action": ["I broke it"]}}
        )


def test_report_has_the_explanation_and_the_tables(labelled: list[evaluation.Example]) -> None:
    text = evaluation_report.report_markdown(labelled)
    assert text.startswith("# Coaching analysis")
    assert "### STAR parts (character overlap)" in text
    assert "| measurable_result |" in text
    assert "| grammar hints (words corrected) | 100 | 100 |" in text


def test_a_general_coach_gets_no_star_flags() -> None:
    found = analyse("We talked about the weather and we went home.", category="general")
    assert found.behavioural is False
    assert found.missing == []


@pytest.mark.parametrize(
    "answer", ["", "   ", "???", "안녕하세요 저는 학생입니다.", "İstanbul, um, was great."]
)
def test_odd_answers_are_analysed_without_error(answer: str) -> None:
    for category in ("interview", "conversation", "medical", "general"):
        found = analyse(answer, category=category)
        for kind, start, end in found.highlights():
            assert kind in HIGHLIGHT_KINDS and 0 <= start < end <= len(answer)
    fillers = analyse("İstanbul, um, was great.").fillers
    assert [("İstanbul, um, was great."[f.start : f.end]) for f in fillers] == ["um"]


def test_an_irregular_verb_given_ed_is_corrected_to_its_past_not_a_lookalike():
    from chat.coach.fluency import grammar_hints, spelling_mistakes

    text = "Yesterday I eated kimchi and we goed to the park. I buyed a seed for my garden."
    fixes = {(c.original, c.corrected) for c in grammar_hints(text)}

    assert {("eated", "ate"), ("goed", "went"), ("buyed", "bought")} <= fixes
    assert not any(c.corrected == "hated" for c in spelling_mistakes(text))
    assert "seed" not in {c.original for c in grammar_hints(text)}  # "a seed" is a noun
