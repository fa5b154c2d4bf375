"""Hand-computed expectations for xstilts.metrics (every value ×100, as the official scorer)."""

from __future__ import annotations

import pytest

from xstilts.metrics import (
    accuracy,
    average_precision_at_k,
    bucc_f1,
    mean_average_precision_at_k,
    mlqa_em_f1,
    mlqa_normalize,
    mrr_at_k,
    seqeval_chunks,
    seqeval_f1,
    squad_em_f1,
    squad_normalize,
)

# --------------------------------------------------------------------------------------------
# accuracy


def test_accuracy():
    assert accuracy(["a", "b", "c", "d"], ["a", "x", "c", "d"]) == 75.0
    # raw string equality: Tatoeba's "[3]" writer format does not match "3"
    assert accuracy(["[3]", "1"], ["3", "1"]) == 50.0
    # XCOPA labels are JSON values
    assert accuracy([1, 0, 1], [1, 1, 1]) == pytest.approx(200 / 3)


def test_accuracy_rejects_bad_input():
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        accuracy(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="zero examples"):
        accuracy([], [])


# --------------------------------------------------------------------------------------------
# seqeval 0.0.12 chunks


def test_chunks_iob2():
    assert seqeval_chunks([["B-PER", "I-PER", "O", "B-LOC"]]) == [("PER", 0, 1), ("LOC", 3, 3)]
    # lenient IOB2: I- after O starts a chunk, a type change splits one
    assert seqeval_chunks([["O", "I-PER", "I-PER"]]) == [("PER", 1, 2)]
    assert seqeval_chunks([["B-PER", "I-LOC", "I-LOC"]]) == [("PER", 0, 0), ("LOC", 1, 2)]
    assert seqeval_chunks([["B-ORG", "B-ORG"]]) == [("ORG", 0, 0), ("ORG", 1, 1)]


def test_chunks_never_cross_sentences():
    # an "O" follows every sentence, so positions shift by one per sentence
    assert seqeval_chunks([["B-PER"], ["I-PER", "I-PER"]]) == [("PER", 0, 0), ("PER", 2, 3)]
    assert seqeval_chunks([["NOUN"], ["NOUN"]]) == [("NOUN", 0, 0), ("NOUN", 2, 2)]
    assert seqeval_chunks([]) == []
    assert seqeval_chunks([[], ["O"]]) == []


def test_chunks_pos_runs_and_s_singletons():
    # UD tags have no "-": the first letter is the marker, the whole tag the type
    assert seqeval_chunks([["NOUN", "NOUN", "VERB"]]) == [("NOUN", 0, 1), ("VERB", 2, 2)]
    # SCONJ and SYM start with "S": every token is its own chunk
    assert seqeval_chunks([["SCONJ", "SCONJ", "SYM", "SYM"]]) == [
        ("SCONJ", 0, 0), ("SCONJ", 1, 1), ("SYM", 2, 2), ("SYM", 3, 3),
    ]
    # CCONJ keeps its own type (seqeval >= 1.0 would merge it with SCONJ as "CONJ")
    assert seqeval_chunks([["CCONJ", "CCONJ", "SCONJ"]]) == [("CCONJ", 0, 1), ("SCONJ", 2, 2)]
    # INTJ's marker is "I" and X is kept as a chunk
    assert seqeval_chunks([["INTJ", "INTJ", "X", "X"]]) == [("INTJ", 0, 1), ("X", 2, 3)]


def test_chunks_exotic_tags():
    # "E-"/"S-" (IOBES) close a chunk; "." and "O" markers never open one by a type change
    assert seqeval_chunks([["B-PER", "E-PER", "S-LOC"]]) == [("PER", 0, 1), ("LOC", 2, 2)]
    assert seqeval_chunks([[".", "."]]) == []
    # seqeval keeps a stale start offset when a chunk ends without having started
    assert seqeval_chunks([["O-X", "X"]]) == [("X", 0, 1)]


def test_seqeval_ner_scores():
    # gold PER(0-1) LOC(3); predicted PER(0-1) ORG(3)
    scores = seqeval_f1([["B-PER", "I-PER", "O", "B-ORG"]], [["B-PER", "I-PER", "O", "B-LOC"]])
    assert scores == {"f1": 50.0, "precision": 50.0, "recall": 50.0}
    assert list(scores) == ["f1", "precision", "recall"]


def test_seqeval_pos_scores():
    gold = [["DET", "NOUN", "NOUN", "VERB", "SCONJ", "SCONJ"]]  # DET NOUN(1-2) VERB SCONJ SCONJ: 5
    pred = [["DET", "NOUN", "ADJ", "VERB", "SCONJ", "CCONJ"]]  # DET NOUN ADJ VERB SCONJ CCONJ: 6
    # correct: DET, VERB, SCONJ(4) -> P = 3/6, R = 3/5, F1 = 2 * .5 * .6 / 1.1 = 6/11
    # (token accuracy would be 4/6)
    scores = seqeval_f1(pred, gold)
    assert scores["precision"] == 50.0
    assert scores["recall"] == 60.0
    assert scores["f1"] == pytest.approx(600 / 11)


def test_seqeval_zero_cases_are_integer_zero():
    # like seqeval: an empty denominator gives the int 0, which json writes as "0"
    scores = seqeval_f1([["O", "O"]], [["O", "O"]])
    assert scores == {"f1": 0, "precision": 0, "recall": 0}
    assert all(type(v) is int for v in scores.values())
    scores = seqeval_f1([["B-PER", "O"]], [["O", "B-PER"]])
    assert scores == {"f1": 0, "precision": 0.0, "recall": 0.0}
    assert type(scores["f1"]) is int and type(scores["precision"]) is float


def test_seqeval_rejects_misaligned_input():
    with pytest.raises(ValueError, match="2 predicted sentences but 1 gold sentences"):
        seqeval_f1([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 2 has 1 predicted tags but 2 gold tags"):
        seqeval_f1([["O"], ["O"]], [["O"], ["O", "O"]])


# --------------------------------------------------------------------------------------------
# SQuAD v1.1


def test_squad_normalize():
    assert squad_normalize("The  Cat's hat!") == "cats hat"
    assert squad_normalize("An apple, a day") == "apple day"
    # articles only as whole words
    assert squad_normalize("Theatre another") == "theatre another"
    # only the 32 ASCII punctuation characters are removed
    assert squad_normalize("«Paris»。") == "«paris»。"
    assert squad_normalize("5 €") == "5 €"


def test_squad_em_f1():
    gold = {"q1": ["the Eiffel Tower", "Eiffel Tower in Paris"], "q2": ["blue"], "q3": ["42"]}
    predictions = {"q1": "Eiffel Tower, Paris", "q2": "Blue!", "q9": "ignored"}
    # q1 "eiffel tower paris": vs "eiffel tower" P 2/3 R 1 F1 0.8; vs "eiffel tower in paris"
    # P 1 R 3/4 F1 6/7 -> 6/7, EM 0. q2: EM 1, F1 1. q3: unanswered, 0 but counted.
    scores = squad_em_f1(predictions, gold)
    assert list(scores) == ["exact_match", "f1"]
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (6 / 7 + 1) / 3)


def test_squad_empty_vs_empty_is_em_1_f1_0():
    assert squad_em_f1({"q": "The"}, {"q": ["a"]}) == {"exact_match": 100.0, "f1": 0.0}
    assert squad_em_f1({"q": ""}, {"q": ["!"]}) == {"exact_match": 100.0, "f1": 0.0}


def test_squad_unicode_punctuation_counts_as_text():
    # XQuAD/TyDiQA use SQuAD normalisation in every language: «» and 。 stay
    assert squad_em_f1({"q": "«París»"}, {"q": ["París"]}) == {"exact_match": 0.0, "f1": 0.0}
    assert squad_em_f1({"q": '"París"'}, {"q": ["París"]}) == {"exact_match": 100.0, "f1": 100.0}
    # no Chinese segmentation either: one token each, no overlap
    assert squad_em_f1({"q": "北京"}, {"q": ["北京大学"]}) == {"exact_match": 0.0, "f1": 0.0}


def test_squad_all_missing_and_errors():
    assert squad_em_f1({}, {"a": ["x"], "b": ["y"]}) == {"exact_match": 0.0, "f1": 0.0}
    with pytest.raises(ValueError, match="no gold questions"):
        squad_em_f1({}, {})
    with pytest.raises(ValueError, match="question 'a' has no gold answer"):
        squad_em_f1({}, {"a": []})


# --------------------------------------------------------------------------------------------
# MLQA


def test_mlqa_articles_per_language():
    assert mlqa_normalize("The cat", "en") == "cat"
    assert mlqa_normalize("El perro y la casa", "es") == "perro y casa"
    assert mlqa_normalize("Der Hund des Mannes", "de") == "hund mannes"
    assert mlqa_normalize("cái bàn của tôi", "vi") == "bàn tôi"
    assert mlqa_normalize("एक किताब", "hi") == "एक किताब"  # no articles removed
    # articles of another language stay
    assert mlqa_normalize("the perro", "es") == "the perro"


def test_mlqa_arabic_article_removed_everywhere():
    assert mlqa_normalize("الكتاب الجديد", "ar") == "كتاب جديد"
    # mid-word: جمال ("beauty") loses its final "ال"
    assert mlqa_normalize("جمال", "ar") == "جم"
    assert mlqa_normalize("ال", "ar") == ""
    assert mlqa_em_f1({"q": "جمال"}, {"q": ["جم"]}, "ar") == {"exact_match": 100.0, "f1": 100.0}
    assert squad_em_f1({"q": "جمال"}, {"q": ["جم"]}) == {"exact_match": 0.0, "f1": 0.0}


def test_mlqa_chinese_mixed_segmentation():
    assert mlqa_normalize("北京大学 is great", "zh") == "北 京 大 学 is great"
    assert mlqa_normalize("长城。", "zh") == "长 城"
    # pred 北 京 vs gold 北 京 大 学: P 1, R 1/2, F1 2/3
    scores = mlqa_em_f1({"q": "北京"}, {"q": ["北京大学"]}, "zh")
    assert scores["exact_match"] == 0.0
    assert scores["f1"] == pytest.approx(200 / 3)
    # the range stops at U+9FA5: U+9FA6 is not split off
    assert mlqa_normalize("a\u9fa6b\u9fa5c", "zh") == "a\u9fa6b \u9fa5 c"


def test_mlqa_unicode_punctuation_removed_symbols_kept():
    assert mlqa_normalize("«Le Monde»", "es") == "le monde"
    assert mlqa_normalize("“Hola”, ¿qué?", "es") == "hola qué"
    # € (Sc) and ° (So) are symbols, not punctuation; ^ and | are ASCII punctuation
    assert mlqa_normalize("5 € 10°C a^b|c", "en") == "5 € 10°c abc"
    # pred 5 € vs gold 5: P 1/2, R 1 -> F1 2/3
    assert mlqa_em_f1({"q": "5 €"}, {"q": ["5"]}, "en")["f1"] == pytest.approx(200 / 3)


def test_mlqa_empty_and_missing():
    assert mlqa_em_f1({"q": "«»"}, {"q": ["the"]}, "en") == {"exact_match": 100.0, "f1": 0.0}
    scores = mlqa_em_f1({"a": "x"}, {"a": ["x"], "b": ["y"], "c": ["z"], "d": ["w"]}, "de")
    assert scores == {"exact_match": 25.0, "f1": 25.0}


def test_mlqa_unknown_language():
    with pytest.raises(ValueError, match="Unknown Language 'fr'"):
        mlqa_em_f1({"q": "a"}, {"q": ["a"]}, "fr")
    with pytest.raises(ValueError, match="Unknown Language 'ja'"):
        mlqa_normalize("a", "ja")


# --------------------------------------------------------------------------------------------
# Retrieval


def test_bucc_f1_duplicate_pairs_collapse():
    gold = [("a", "1"), ("b", "2"), ("d", "4")]
    pred = [("a", "1"), ("a", "1"), ("b", "2"), ("c", "9")]
    scores = bucc_f1(pred, gold)
    assert list(scores) == ["f1", "precision", "recall"]
    assert scores == pytest.approx({"f1": 200 / 3, "precision": 200 / 3, "recall": 200 / 3})
    # 1 correct of 4 predicted, 2 gold: P 25, R 50, F1 2 * .25 * .5 / .75 = 1/3
    scores = bucc_f1([("a", "1"), ("x", "1"), ("y", "1"), ("z", "1")], [("a", "1"), ("b", "2")])
    assert scores == pytest.approx({"f1": 100 / 3, "precision": 25.0, "recall": 50.0})


def test_bucc_f1_nothing_correct_is_integer_zero():
    scores = bucc_f1([("a", "2")], [("a", "1")])
    assert scores == {"f1": 0, "precision": 0, "recall": 0}
    assert all(type(v) is int for v in scores.values())
    assert bucc_f1([], []) == {"f1": 0, "precision": 0, "recall": 0}


def test_mrr_at_k():
    gold = {"a": "Q1", "b": "Q2", "c": "Q3", "d": "Q4"}
    predictions = {"a": ["Q1", "Q2"], "b": ["Q9", "Q2"], "c": ["Q8"] * 20 + ["Q3"], "z": ["Q4"]}
    # ranks 1, 2, beyond 20, missing -> (1 + 1/2 + 0 + 0) / 4
    assert mrr_at_k(predictions, gold) == 37.5
    assert mrr_at_k(predictions, gold, k=21) == pytest.approx(100 * (1 + 1 / 2 + 1 / 21) / 4)
    # first occurrence counts
    assert mrr_at_k({"a": ["Q0", "Q1", "Q1"]}, {"a": "Q1"}) == 50.0
    assert mrr_at_k({}, {}) == 0.0


def test_average_precision_at_k():
    # hits at ranks 1 and 3: (1/1 + 2/3) / min(2, 20)
    assert average_precision_at_k({"a", "b"}, ["a", "x", "b"]) == pytest.approx(5 / 6)
    # a repeated candidate is not a second hit
    assert average_precision_at_k({"a", "b"}, ["a", "a", "b"]) == pytest.approx(5 / 6)
    # the divisor is capped at k: 30 targets, the top 20 all hits
    targets = [f"t{i}" for i in range(30)]
    assert average_precision_at_k(targets, targets, k=20) == 1.0
    # a target beyond k does not count: (1/1) / min(2, 2)
    assert average_precision_at_k({"a", "b"}, ["a", "x", "b"], k=2) == 0.5
    with pytest.raises(ValueError, match="at least one target"):
        average_precision_at_k([], ["a"])


def test_mean_average_precision_at_k():
    value = mean_average_precision_at_k([{"a", "b"}, {"c"}], [["a", "x", "b"], ["x", "c"]])
    assert value == pytest.approx(100 * (5 / 6 + 1 / 2) / 2)
    with pytest.raises(ValueError, match="2 target sets but 1 rankings"):
        mean_average_precision_at_k([{"a"}, {"b"}], [["a"]])
