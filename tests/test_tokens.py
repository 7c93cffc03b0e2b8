"""Tier 2: words and token positions from the host's own tokenizer."""
import pytest

from attention_motion.host.tokens import WordNotFoundError, locate_words, parse_word_list, tokenize_prompt

pytestmark = pytest.mark.host


class SameWordIdClip:
    """The CLIP, but with every content token given word id 1, as some newer hosts report."""

    def __init__(self, clip):
        self.clip = clip
        self.tokenizer = clip.tokenizer

    def tokenize(self, text, return_word_ids=False):
        out = self.clip.tokenize(text, return_word_ids=True)
        return {k: [[(t, w, 1 if i else 0) for t, w, i in chunk] for chunk in v] for k, v in out.items()}


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_words_and_positions(host, tiny_sd15, tiny_sdxl, arch):
    clip = tiny_sd15[1] if arch == "sd15" else tiny_sdxl[1]
    pt = tokenize_prompt(clip, "a red circle, and a (blue:1.2) square.")
    assert pt.words == ["a", "red", "circle,", "and", "a", "blue", "square."]
    assert pt.word_positions[:3] == [[1], [2], [3, 4]]
    assert pt.token_strings[0] == "<start>" and pt.n_tokens == 77
    assert locate_words(clip, pt, ["circle", "blue square", "a"], "Test") == [[3], [7, 8], [1, 6]]


def test_grouping_does_not_depend_on_host_word_ids(host, tiny_sd15):
    clip = tiny_sd15[1]
    prompt = "a red circle, and a blue square red,blue"
    real, same = tokenize_prompt(clip, prompt), tokenize_prompt(SameWordIdClip(clip), prompt)
    assert same.words[:7] == real.words[:7]
    assert same.word_positions[:7] == real.word_positions[:7]
    assert locate_words(clip, same, ["square", "blue"], "Test") == locate_words(clip, real, ["square", "blue"], "Test")


def test_errors_name_node_input_and_prompt_words(host, tiny_sd15):
    clip = tiny_sd15[1]
    pt = tokenize_prompt(clip, "a red circle")
    with pytest.raises(WordNotFoundError, match=r"Node: word 'dog' \(input 'subject'\).*Prompt words: a, red, circle"):
        locate_words(clip, pt, ["dog"], "Node", "subject")
    with pytest.raises(WordNotFoundError, match="input 'words' is empty"):
        locate_words(clip, pt, parse_word_list(" , "), "Node")
