"""What each kind of job adds to the tenant's prompt, and its default shape. Plain Python."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    kind: str
    label: str
    default_ratio: str
    template: str
    examples: tuple[str, ...]

    def render(self, prompt: str) -> str:
        return self.template.format(prompt=prompt.strip())


PRESETS: dict[str, Preset] = {
    "avatar": Preset(
        kind="avatar",
        label="Avatar",
        default_ratio="1:1",
        template=(
            "A profile avatar portrait of {prompt}. Head and shoulders, centred, friendly "
            "expression, soft even light, plain background, suitable as a user avatar."
        ),
        examples=("a smiling astronaut", "a red-haired barista with freckles", "a wise old owl"),
    ),
    "mockup": Preset(
        kind="mockup",
        label="Product mockup",
        default_ratio="4:3",
        template=(
            "A photorealistic product mockup of {prompt}. Studio lighting, clean backdrop, "
            "the product as the hero of a product card."
        ),
        examples=("a matte black water bottle", "a ceramic coffee mug with a fox logo"),
    ),
    "banner": Preset(
        kind="banner",
        label="Ad banner",
        default_ratio="16:9",
        template=(
            "An advertising banner: {prompt}. Bold, legible headline text, strong "
            "composition, brand-safe."
        ),
        examples=('summer sale with the headline "Up to 50% off"', 'the headline "Hola, Madrid"'),
    ),
    # Tested against the emulator and the prompt-writing advice for Gemini image editing:
    # say which input is which, name what must not change, then what may.
    "tryon": Preset(
        kind="tryon",
        label="Virtual try-on",
        default_ratio="3:4",
        template=(
            "Virtual try-on. The first image is the product; the second image is the person. "
            "Show the person from the second image wearing or holding the exact product from "
            "the first image. Keep the product exactly as it is: the same shape, colours, "
            "pattern, logo, text and proportions; do not redesign, recolour or restyle it. "
            "Keep the person's face, body, skin tone and hair. Realistic fit, natural light, "
            "a clean e-commerce catalogue photo. {prompt}"
        ),
        examples=("full-length, standing, studio backdrop", "three-quarter view, walking"),
    ),
    "image": Preset(
        kind="image",
        label="Free prompt",
        default_ratio="1:1",
        template="{prompt}",
        examples=("a lighthouse at dawn in watercolour",),
    ),
}


# A try-on job's input images: the product, then the person or model.
TRYON_INPUTS = 2


def model_prompt(kind: str, prompt: str) -> str:
    return PRESETS[kind].render(prompt)
