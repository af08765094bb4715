"""The shared cleaning of text and bodies (newswire.sanitize)."""

from __future__ import annotations

from lxml import etree

from newswire.sanitize import body_text, clean_text, sanitize_body, word_count


def test_body_keeps_its_words_and_becomes_well_formed_xhtml():
    out = sanitize_body("Lead &nbsp;<p>a<br>b <a href='https://e.org/x'>link</a></p><hr><p>ok &amp; &lt;</p>")
    etree.fromstring(f"<div>{out}</div>")  # well-formed
    assert '<br/>' in out and '<a href="https://e.org/x">link</a>' in out and "ok &amp; &lt;" in out


def test_body_loses_scripts_handlers_and_javascript_links():
    out = sanitize_body('<p onclick="x()">t<script>bad()</script><a href="javascript:alert(1)">l</a>'
                        '<img src=x onerror=y><iframe src="https://e.org"></iframe></p>')
    assert out == "<p>t<a>l</a></p>"


def test_a_text_run_over_ten_million_characters_is_kept_whole():
    out = sanitize_body("<p>" + "a" * 11_000_000 + "</p>")
    assert len(body_text(out)) == 11_000_000


def test_clean_text_removes_only_the_documented_characters():
    text = "A\x00B\x1fC\ufeffD\u202eE\ufffe"
    assert clean_text(text) == "ABCDE"
    kept = "עברית \u200f العربية \u200e emoji 🚀 \u2067isolate\u2069 zwj\u200d"
    assert clean_text(kept) == kept


def test_words_are_counted_across_block_tags_not_inside_inline_ones():
    # the serialised body has no space between paragraphs: "b</p><p>c" is two words, not one
    assert word_count(sanitize_body("<p>a b</p><p>c d</p>")) == 4
    assert word_count(sanitize_body("<ul><li>one</li><li>two</li></ul><p>x<br>y</p>")) == 4
    assert word_count(sanitize_body("<p><em>un</em>breakable <a href='https://e.org/'>link</a>s</p>")) == 2
    assert word_count(sanitize_body("<p>كلمة\u00a0أخرى</p><p>שתי מילים</p>")) == 4  # a no-break space breaks too
    assert word_count("") == 0
