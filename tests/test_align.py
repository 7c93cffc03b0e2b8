"""Token alignment for Prompt-to-Prompt (pure)."""
import pytest
import torch

from attention_motion.core.align import GAP, needleman_wunsch, refine_mapping, replace_mapping, source_of

pytestmark = pytest.mark.core


def test_needleman_wunsch_inserts_gaps_for_added_tokens():
    a = [10, 11, 12]
    b = [10, 20, 11, 12, 21]
    pairs = needleman_wunsch(a, b)
    assert [p for p in pairs if GAP not in p] == [(0, 0), (1, 2), (2, 3)]
    assert sorted(j for _, j in pairs if j != GAP) == list(range(5))
    assert sorted(i for i, _ in pairs if i != GAP) == list(range(3))


def test_needleman_wunsch_never_pairs_mismatches_over_gaps():
    pairs = needleman_wunsch([1, 2, 3], [1, 9, 3])
    assert (1, 1) not in pairs
    assert (0, 0) in pairs and (2, 2) in pairs


def test_replace_mapping_same_token_counts_is_identity():
    # 8 positions: start, 3 words of one token, end, 3 pads
    mapper, mapped = replace_mapping([[1], [2], [3]], [[1], [2], [3]], 8)
    assert torch.equal(mapper, torch.eye(8))
    assert mapped.all()


def test_replace_mapping_word_of_two_tokens_keeps_mass_and_shifts_rest():
    # source "a cat sat": [s] a cat sat [e] p p p ; target "a hamster sat": [s] a ham ster sat [e] p p
    mapper, mapped = replace_mapping([[1], [2], [3]], [[1], [2, 3], [4]], 8)
    probs = torch.rand(8)
    out = probs @ mapper
    assert torch.allclose(out[2] + out[3], probs[2])
    assert out[4] == probs[3] and out[1] == probs[1] and out[0] == probs[0]
    assert out[5] == probs[4]  # end token follows the words
    assert mapped.all() and out[7] == probs[6]  # pads map in order; the source's last pad is unused


def test_replace_mapping_target_shorter_leaves_last_pads_unmapped():
    mapper, mapped = replace_mapping([[1], [2, 3], [4]], [[1], [2], [3]], 8)
    assert mapped[:7].all() and not mapped[7]  # no source pad left for the target's last pad


def test_replace_mapping_rejects_different_word_counts():
    with pytest.raises(ValueError, match="same number of words"):
        replace_mapping([[1], [2]], [[1]], 4)


def test_refine_mapping_new_word_keeps_its_own_map():
    # source "a cat": ids 5, 6 at 1, 2 ; target "a fluffy cat": 5, 9, 6 at 1, 2, 3
    mapper, mapped = refine_mapping([(1, 5), (2, 6)], [(1, 5), (2, 9), (3, 6)], 8, [[1], [2]], [[1], [2], [3]])
    assert mapped[1] and mapped[3] and not mapped[2]
    assert mapper[2, 3] == 1 and mapper[1, 1] == 1
    assert mapper[:, 2].sum() == 0
    assert mapper[3, 4] == 1  # source end token -> target end token
    assert source_of(mapper, [2]) == [3]
