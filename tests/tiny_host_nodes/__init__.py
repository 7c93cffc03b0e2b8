"""Test-only ComfyUI custom node package: a loader for the tiny in-code models.

Loaded only by the test harness (``nodes.load_custom_node``) or by a test server's
extra custom-node folder; never shipped with the pack.
"""
try:  # loaded by the host as a package
    from . import models
except ImportError:  # pragma: no cover - imported as a plain module
    import models  # type: ignore

_CACHE = {}


ARCHS = ("sd15", "sdxl", "sd2", "sd2v")


def get_models(arch="sd15", seed=0):
    """(MODEL, CLIP, VAE) for ``arch`` in ARCHS, built once per (arch, seed).

    "sd2": SD2.x eps (2.0 base, 2.1-base); "sd2v": SD2.1 768-v (v-prediction), same UNet weights.
    """
    key = (arch, int(seed))
    if key not in _CACHE:
        if arch == "sd15":
            _CACHE[key] = models.build_sd15(int(seed))
        elif arch == "sdxl":
            model, clip = models.build_sdxl(int(seed))
            # same 4-channel latent space: reuse the sd15 TAESD-layout VAE
            vae = get_models("sd15", seed)[2]
            _CACHE[key] = (model, clip, vae)
        elif arch in ("sd2", "sd2v"):
            _CACHE[key] = models.build_sd2(int(seed), v_prediction=arch == "sd2v")
        else:
            raise ValueError("unknown arch {!r}; expected one of {}".format(arch, ", ".join(ARCHS)))
    return _CACHE[key]


class TinyCheckpointLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "arch": (list(ARCHS),),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1}),
        }}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    CATEGORY = "testing/tiny"

    def load(self, arch, seed):
        return get_models(arch, seed)


class TinyFail:
    """Output node that always raises: lets tests check how execution errors are reported."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latent": ("LATENT",), "message": ("STRING", {"default": "TinyFail"})}}

    RETURN_TYPES = ()
    FUNCTION = "fail"
    OUTPUT_NODE = True
    CATEGORY = "testing/tiny"

    def fail(self, latent, message):
        raise RuntimeError(message)


NODE_CLASS_MAPPINGS = {"TinyCheckpointLoader": TinyCheckpointLoader, "TinyFail": TinyFail}
NODE_DISPLAY_NAME_MAPPINGS = {"TinyCheckpointLoader": "Tiny Checkpoint Loader (tests)",
                              "TinyFail": "Tiny Fail (tests)"}
