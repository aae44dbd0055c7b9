"""Offline word/sentence/paragraph splitting shared by the taxonomy and the checkers."""

from __future__ import annotations

import pytest

from dpaudit.data import text as tx


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("One. Two! Three?", ["One.", "Two!", "Three?"]),
        ("Dr. Smith paid $3.50 for it. Was it worth it?", ["Dr. Smith paid $3.50 for it.", "Was it worth it?"]),
        ("Use it e.g. daily, i.e. often. Then stop.", ["Use it e.g. daily, i.e. often.", "Then stop."]),
        ("J. R. R. Tolkien wrote it. Yes.", ["J. R. R. Tolkien wrote it.", "Yes."]),
        ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
        ("Wait... what? Really!!", ["Wait...", "what?", "Really!!"]),
        ("no final punctuation", ["no final punctuation"]),
        ("a title\nfirst line. second line.", ["a title", "first line.", "second line."]),
        ("***\n* item\n\n", ["* item"]),  # a divider is no sentence
        ("Ünïcode wörds. Ça va? Ja.", ["Ünïcode wörds.", "Ça va?", "Ja."]),
        ("trailing whitespace.   \n  ", ["trailing whitespace."]),
    ],
)
def test_split_sentences(text, expected):
    assert tx.split_sentences(text) == expected
    assert tx.count_sentences(text) == len(expected)


def test_sentence_count_ignores_case():
    text = "Dr. Who met Mr. Smith at 5 p.m. today. They talked. Then left!"
    assert tx.count_sentences(text) == tx.count_sentences(text.lower()) == tx.count_sentences(text.upper()) == 3


def test_sentence_spans_point_into_the_text():
    text = "  First one.  Second one!\n\nThird"
    assert [text[a:b] for a, b in tx.sentence_spans(text)] == ["First one.", "Second one!", "Third"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("A well-known fact: it's 3.5 km.", ["A", "well-known", "fact", "it's", "3", "5", "km"]),
        ("<<Title>> *hi* [name] P.S.", ["Title", "hi", "name", "P", "S"]),
        ("naïve Über 東京", ["naïve", "Über", "東京"]),
        ("snake_case", ["snake", "case"]),
    ],
)
def test_words(text, expected):
    assert tx.words(text) == expected


def test_paragraphs_split_on_blank_lines():
    assert tx.split_paragraphs("a\nb\n\n  \n c\n\n\nd  \n") == ["a\nb", "c", "d"]
    assert tx.split_paragraphs("   ") == []


def test_occurrences_are_whole_word_and_case_insensitive():
    assert tx.count_occurrences("Data, data! metadata DATA data-driven", "data") == 4
    assert tx.count_occurrences("new york and New York", "new york") == 2


def test_capital_words():
    assert tx.count_capital_words("NASA and the USA. I am OK, P.S. ÉTÉ") == 4
    assert not tx.is_capital_word("I") and tx.is_capital_word("ÉTÉ")


def test_markup_counts():
    assert tx.count_highlights("*one* and **two** but not * * or *\nthree*") == 2
    assert tx.count_placeholders("[name] at [ ] on [date]") == 2
    assert tx.count_bullets("* a\n- b\n  + c\n*not*\n---\n•  d") == 4
