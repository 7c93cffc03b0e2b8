"""Tier 2: run boundaries and the shared UNet wrapper slot, on the real host of each lane.

Hosts with named wrappers (``comfy.patcher_extension``, 2024-12 on) mark each sampling run with
the router's ``OUTER_SAMPLE`` wrapper; the pinned 2024 host has none and the router infers runs
from sigma. Tests that need the wrapper say so in their skip reason.
"""
import pytest
import torch

import harness
from attention_motion.core.controller import Controller
from attention_motion.host import compat
from attention_motion.host.passes import has_source_pass, install_source_pass
from attention_motion.host.router import find_router, install
from attention_motion.host.unet_chain import UnetWrapperChain

pytestmark = pytest.mark.host

STEPS = 4
NO_WRAPPERS = "this host has no named wrappers (comfy.patcher_extension, 2024-12 on); the router infers runs from sigma"


class StepRecorder(Controller):
    """Records (run number, step, total steps) of every conditional cross-attention call."""

    def __init__(self):
        self.resets = 0
        self.seen = []

    def reset(self):
        self.resets += 1

    def wants_cross(self, call):
        if call.is_cond:
            self.seen.append((self.resets, call.run.step, call.run.total_steps))
        return False


class RowNudge(Controller):
    """Adds 0.05 * row index to the latent rows the model sees (row 0 unchanged)."""

    def wants_model_input(self):
        return True

    def model_input(self, run, x):
        return x + 0.05 * torch.arange(x.shape[0], dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)


def _conds(clip, rows=1):
    pos = harness.encode(clip, "a red circle")
    if rows > 1:
        pos = [[t.repeat(rows, 1, 1), dict(extra)] for t, extra in pos]
    return pos, harness.encode(clip, "")


def _steps_of_run(rec, run):
    return sorted({s for r, s, _ in rec.seen if r == run})


def test_consecutive_runs_reset_and_count_steps(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    rec = StepRecorder()
    routed = install(model, rec, "test")
    pos, neg = _conds(clip)
    for _ in range(2):
        harness.ksample(routed, pos, neg, harness.empty_latent(), seed=1, steps=STEPS)
    assert rec.resets == 2
    assert _steps_of_run(rec, 1) == _steps_of_run(rec, 2) == list(range(STEPS))
    if compat.has_run_wrappers(routed):
        # bounded runs know the schedule: every call knows the run's length
        assert {t for _, _, t in rec.seen} == {STEPS}
        assert not find_router(routed).clock.bounded  # the run was closed after sampling


def _capture(host, model, clip):
    node = host.nodes.NODE_CLASS_MAPPINGS["AttentionCapture"]()
    return node.capture(model, clip, "a red circle", "red circle", start=0.0, end=1.0, resolutions="all")


@pytest.mark.parametrize("sampler,denoise,stop_after", [("euler", 1.0, 0), ("euler", 1.0, 1), ("euler", 1.0, 3),
                                                       ("heun", 1.0, 0), ("euler", 0.6, 0)])
def test_interrupted_run_leaves_no_state(host, tiny_sd15, sampler, denoise, stop_after):
    """A run interrupted after step 0, 1 or mid-run, then the same run again: a clean run.

    The rerun's store and steps equal those of a run on a fresh capture. Hosts with named
    wrappers close the interrupted run in the wrapper; older hosts see the rerun's first call
    come at a higher sigma, or at the first sigma after that step was completed.
    """
    import comfy.model_management
    import comfy.sample

    model, clip, _ = tiny_sd15
    steps = 6
    pos, neg = _conds(clip)
    latent = torch.randn((1, 4, 32, 32), generator=torch.Generator().manual_seed(9)) * 0.5

    def run(m, callback=None):
        noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(5))
        with torch.inference_mode():
            return comfy.sample.sample(m, noise, steps, 5.0, sampler, "normal", pos, neg, latent, denoise=denoise,
                                       callback=callback, disable_pbar=True, seed=5)

    def interrupt(step, *args):
        if step >= stop_after:
            raise comfy.model_management.InterruptProcessingException()

    clean_model, clean_store = _capture(host, model, clip)
    clean_rec = StepRecorder()
    clean_out = run(install(clean_model, clean_rec, "rec"))
    captured, store = _capture(host, model, clip)
    rec = StepRecorder()
    routed = install(captured, rec, "rec")
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        run(routed, interrupt)
    assert max(s for _, s, _ in rec.seen) >= stop_after
    out = run(routed)
    assert rec.resets == 2
    assert [x[1:] for x in rec.seen if x[0] == 2] == [x[1:] for x in clean_rec.seen]
    assert torch.equal(store.maps(), clean_store.maps())
    assert torch.equal(out, clean_out)


def test_other_packs_outer_sample_wrappers_keep_working(host, tiny_sd15):
    """A second OUTER_SAMPLE wrapper, installed before and after the router's, runs once per run."""
    model, clip, _ = tiny_sd15
    if not compat.has_run_wrappers(model):
        pytest.skip(NO_WRAPPERS)
    from comfy.patcher_extension import WrappersMP

    runs = []

    def other(executor, *args, **kwargs):
        runs.append("other")
        return executor(*args, **kwargs)

    pos, neg = _conds(clip)
    plain = harness.ksample(model, pos, neg, harness.empty_latent(), seed=2, steps=STEPS)
    before = model.clone()
    before.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, "other_pack", other)
    rec = StepRecorder()
    routed = install(install(before, Controller(), "first"), rec, "second")
    after = routed.clone()
    after.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, "other_pack_2", other)
    for m, n_other in ((routed, 1), (after, 2)):
        runs.clear()
        out = harness.ksample(m, pos, neg, harness.empty_latent(), seed=2, steps=STEPS)
        assert runs == ["other"] * n_other
        assert (out - plain).abs().max().item() <= 1e-5
    # exactly one wrapper of ours per model: the stacked router replaced the first one's
    assert len(routed.get_wrappers(WrappersMP.OUTER_SAMPLE, compat.PACK_KEY)) == 1
    assert rec.resets == 2 and _steps_of_run(rec, 2) == list(range(STEPS))


def test_unet_wrapper_order_of_installation_does_not_matter(host, tiny_sd15):
    """Source pass and router share the UNet wrapper slot with a foreign wrapper, in any order."""
    model, clip, _ = tiny_sd15
    foreign_calls = []

    def foreign(apply_model, args):
        foreign_calls.append(args["input"].shape[0])
        return apply_model(args["input"], args["timestep"], **args["c"])

    base = model.clone()
    base.set_model_unet_function_wrapper(foreign)
    source_first = install(install_source_pass(base.clone()), RowNudge(), "nudge")
    router_first = install_source_pass(install(base, RowNudge(), "nudge"))
    for m in (source_first, router_first):
        chain = m.model_options["model_function_wrapper"]
        assert isinstance(chain, UnetWrapperChain) and chain.foreign is foreign
        assert [link.name for link in chain.links] == ["source_pass", "router"]
        assert has_source_pass(m)
    pos, neg = _conds(clip, rows=2)
    latent = harness.empty_latent(batch=2)
    out_a = harness.ksample(source_first, pos, neg, latent, seed=4, steps=STEPS)
    assert foreign_calls  # the foreign wrapper ran, inside ours
    foreign_calls.clear()
    out_b = harness.ksample(router_first, pos, neg, latent, seed=4, steps=STEPS)
    assert foreign_calls
    assert torch.equal(out_a, out_b)
    # the source row is the plain single-row run, the nudged row is not
    single = harness.ksample(model, *_conds(clip), harness.empty_latent(), seed=4, steps=STEPS)
    assert (out_a[0] - single[0]).abs().max().item() <= 1e-5
    assert (out_a[1] - out_a[0]).abs().max().item() > 1e-2
    # a router whose controllers do not edit the input adds no link
    idle = install(install_source_pass(base.clone()), Controller(), "idle")
    assert [link.name for link in idle.model_options["model_function_wrapper"].links] == ["source_pass"]
