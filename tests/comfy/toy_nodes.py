"""Pure-Python stand-ins with the classic ComfyUI names and widget orders (no torch)."""

from latentgraph.graph import (
    CLIP,
    CONDITIONING,
    IMAGE,
    INT,
    LATENT,
    MODEL,
    STRING,
    VAE,
    Choice,
    Float,
    Int,
    Output,
    Registry,
    Socket,
    String,
    node,
)  # fmt: skip

registry = Registry()


def _noop(ctx, **kw):
    return None


node("CheckpointLoaderSimple", registry=registry, inputs=[Choice("ckpt_name", ["builtin:tiny-sd"])],
     outputs=[Output("MODEL", MODEL), Output("CLIP", CLIP), Output("VAE", VAE)])(_noop)  # fmt: skip
node("CLIPTextEncode", registry=registry, inputs=[String("text", multiline=True), Socket("clip", CLIP)],
     outputs=[Output("CONDITIONING", CONDITIONING)])(_noop)  # fmt: skip
node("EmptyLatentImage", registry=registry,
     inputs=[Int("width", 512), Int("height", 512), Int("batch_size", 1)],
     outputs=[Output("LATENT", LATENT)])(_noop)  # fmt: skip
node("KSampler", registry=registry,
     inputs=[Socket("model", MODEL), Int("seed", 0, seed=True), Int("steps", 20), Float("cfg", 8.0),
             Choice("sampler_name", ["euler", "ddim"]), Choice("scheduler", ["normal", "karras"]),
             Socket("positive", CONDITIONING), Socket("negative", CONDITIONING),
             Socket("latent_image", LATENT), Float("denoise", 1.0)],
     outputs=[Output("LATENT", LATENT)])(_noop)  # fmt: skip
node("VAEDecode", registry=registry, inputs=[Socket("samples", LATENT), Socket("vae", VAE)],
     outputs=[Output("IMAGE", IMAGE)])(_noop)  # fmt: skip
node("SaveImage", registry=registry, output_node=True,
     inputs=[Socket("images", IMAGE), String("filename_prefix", "ComfyUI")])(_noop)  # fmt: skip
node("LatentUpscale", registry=registry,
     inputs=[Socket("samples", LATENT), Choice("upscale_method", ["nearest-exact", "bilinear"]),
             Int("width", 512), Int("height", 512), Choice("crop", ["disabled", "center"])],
     outputs=[Output("LATENT", LATENT)])(_noop)  # fmt: skip
node("LoadImage", registry=registry,
     inputs=[Choice("image", ["a.png", "b.png"], image_upload=True)],
     outputs=[Output("IMAGE", IMAGE), Output("MASK", "MASK")])(_noop)  # fmt: skip
node("StringConcatenate", registry=registry,
     inputs=[String("string_a", "", multiline=True), String("string_b", "", multiline=True),
             String("delimiter", "")],
     outputs=[Output("STRING", STRING)])(_noop)  # fmt: skip


def _shapes() -> Registry:
    """The toy ComfyUI nodes plus shapes they lack: uploads before other widgets and alone as
    an optional one, optional sockets and widgets, an INT output, an INT socket, a lone seed."""
    reg = Registry()
    for node_type in registry:
        reg.add(node_type)

    def noop(ctx, **kw):
        return None

    node("LoadImageMask", registry=reg,
         inputs=[Choice("image", ["m.png"], image_upload=True), Choice("channel", ["alpha", "red"])],
         outputs=[Output("MASK", "MASK")])(noop)  # fmt: skip
    node("UploadWithOptions", registry=reg,
         inputs=[Choice("image", ["m.png"], image_upload=True), Int("size", 8),
                 Int("extra", 1, optional=True)],
         outputs=[Output("IMAGE", "IMAGE")])(noop)  # fmt: skip
    node("IntValue", registry=reg, inputs=[Int("value", 0)], outputs=[Output("INT", INT)])(noop)
    node("Blend", registry=reg,
         inputs=[Socket("a", "IMAGE"), Socket("b", "IMAGE", optional=True),
                 Float("factor", 0.5), String("note", optional=True)],
         outputs=[Output("IMAGE", "IMAGE"), Output("MASK", "MASK")])(noop)  # fmt: skip
    node("Seeded", registry=reg, inputs=[Int("seed", 0, seed=True)],
         outputs=[Output("INT", INT)])(noop)  # fmt: skip
    node("OptionalUpload", registry=reg,
         inputs=[Choice("image", ["m.png"], image_upload=True, optional=True)],
         outputs=[Output("IMAGE", "IMAGE")])(noop)  # fmt: skip
    node("TakesInt", registry=reg, inputs=[Socket("count", INT), Int("size", 8)],
         outputs=[Output("IMAGE", "IMAGE")])(noop)  # fmt: skip
    return reg


shapes = _shapes()
