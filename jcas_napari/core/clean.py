"""Label cleaning with a trained model: proposed masks, confidence, change regions.

For each frame the model gives q, its estimate of the clean class of each pixel: the
DAR-refined probabilities, averaged with those of the horizontally flipped frame, resized
to the frame with the same pixel-centre geometry as the input resize, and temperature-
scaled as calibrated on the held-out split. The proposal rule (``core.propose``) combines
q with T_C and the given label. Models trained without T (the CE baseline) give a noisy
posterior; it is corrected backwards with their anchor-estimated T first.

Do no harm: a model whose held-out predictions of the labels are no better than the class
frequencies (``core.guards``) proposes nothing, and ``weak_reason`` says why; a model that
calls more of the drawings of one part another part than that part may not relabel it as
the other (``propose.disputed_parts``). A frame's noise score is the mean over its
labelled pixels of P(given label is wrong | image).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from jcas_napari.core.batches import sequence_map
from jcas_napari.core.checkpoint import load_checkpoint, model_from_checkpoint
from jcas_napari.core.dar import pixel_affinity, to_grid
from jcas_napari.core.device import pick_device
from jcas_napari.core.guards import (
    DataCheck,
    check_on_data,
    guard_transition,
    model_guard,
    with_probs,
)
from jcas_napari.core.infer import predict, to_tensor
from jcas_napari.core.propose import Region, RuleSettings, boundary_bands, propose
from jcas_napari.core.transitions import (
    backward_correct,
    clean_prior_from_noisy,
    noise_rate,
)
from jcas_napari.core.validate import sharpen
from jcas_napari.data.resize import resize_image

__all__ = [
    "Cleaner",
    "CleaningResult",
    "DataCheck",
    "Region",
    "RuleSettings",
    "check_on_data",
    "clean",
    "guard_transition",
    "model_guard",
]


@dataclass
class CleaningResult:
    """Cleaning of one frame; all maps are (H,W) at the frame's own size."""

    index: int
    id: str
    prediction: np.ndarray  # uint8 class ids (DAR-refined argmax)
    confidence: np.ndarray  # float32 top probability
    proposed: np.ndarray  # uint8: the given mask with the accepted regions replaced
    regions: np.ndarray  # int32 region ids, 0 = unchanged; 1 = best-scored
    region_info: list[Region] = field(default_factory=list)
    noise_score: float = 0.0
    changed_fraction: float = 0.0


class Cleaner:
    """A loaded checkpoint that cleans frames and explains them (affinity maps)."""

    def __init__(
        self,
        checkpoint: os.PathLike | str | dict,
        num_classes: int | None = None,
        device: str = "auto",
        settings: RuleSettings | None = None,
    ) -> None:
        ckpt = (
            checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint, num_classes)
        )
        self.checkpoint = ckpt
        self.source = None if isinstance(checkpoint, dict) else str(checkpoint)
        self.device = pick_device(device)
        self.net, self.cfg = model_from_checkpoint(ckpt)
        self.net.to(self.device)
        self.class_names = list(ckpt["class_names"])
        self.ignore_index = int(ckpt.get("ignore_index", 255))
        self.settings = settings or RuleSettings()
        k = len(self.class_names)
        self.method = ckpt.get("method", "jcas")
        # Baselines trained without the affinity branch predict without DAR.
        self.refine = self.method == "jcas"
        self.temperature = float((ckpt.get("guard") or {}).get("temperature", 1.0))
        seen = ckpt.get("trained_on")  # id -> content fingerprint of each frame it trained on
        self.trained_on: dict[str, str] = dict(seen) if isinstance(seen, dict) else {}
        self.noisy_prior = np.asarray(ckpt.get("prior", np.full(k, 1 / k)), np.float64)
        self.size = (self.cfg.input.height, self.cfg.input.width)
        self.reset()

    def reset(self) -> None:
        """Forget what cleaning other frames found (``use_check``): back to the
        checkpoint's T, cap and guard. The GUI keeps one cleaner per model; masks cleaned
        before must not set the T, the cap or the verdict for the next ones."""
        ckpt, k = self.checkpoint, len(self.class_names)
        # The rule's T: the anchor estimate on held-out frames at the end of training, for
        # every method (the learned T_C of a short run stays near its start; RESULTS.md).
        self.t_c = np.asarray(ckpt.get("t_c_anchor", ckpt.get("t_c", np.eye(k))), np.float64)
        self.t_bands: np.ndarray | None = None  # [B,K,K] per distance band, from the data
        self.blocked: np.ndarray | None = None  # [K,K] bool, from the data
        self.t_guard = guard_transition(ckpt, self.t_c)
        self.noise_rate = self._rate(self.t_c)
        self.weak_reason = model_guard(ckpt)
        self.t_frames = (0, False)  # frames T was estimated on; whether trained on them

    def use_transition(self, t: np.ndarray, t_bands: np.ndarray | None = None) -> None:
        """Use T_C [K,K] estimated on the frames to clean, and per distance band [B,K,K]
        for the rule's posterior where given (``propose.boundary_bands``).

        The cap on changes becomes the smaller of the noise rates that this T and the
        checkpoint's held-out T imply: both count the model's own confident errors as
        label noise, so the smaller one is the safer bound (a model that saw clean masks
        in training keeps a small cap on any data). The bands move where changes may go,
        not how many."""
        self.t_c = np.asarray(t, np.float64)
        self.t_bands = None if t_bands is None else np.asarray(t_bands, np.float64)
        self.noise_rate = min(self.noise_rate, self._rate(self.t_c))

    def use_check(self, check: DataCheck) -> None:
        """Adopt what ``check_on_data`` found on the frames to clean."""
        self.weak_reason = check.reason
        if check.t_c is not None:
            self.use_transition(check.t_c, check.t_bands)
        self.blocked = check.blocked
        self.t_frames = (check.frames, check.in_sample)

    def blocked_pairs(self) -> list[tuple[str, str]]:
        """(drawn part, proposed part) names of the changes the rule does not make; none
        for a model the guard stopped, which makes no changes at all."""
        stopped = self.blocked is None or self.weak_reason is not None
        pairs = [] if stopped else zip(*np.nonzero(self.blocked))
        return [(self.class_names[a], self.class_names[b]) for a, b in pairs]

    def scale(self, frame: np.ndarray) -> float:
        """Frame pixels per model input pixel (the geometric mean of the two axes)."""
        return float(np.sqrt(frame.shape[0] * frame.shape[1] / (self.size[0] * self.size[1])))

    def _rate(self, t: np.ndarray) -> float:
        """The share of wrong labels that T [K,K] and the checkpoint's noisy prior imply."""
        return noise_rate(t, clean_prior_from_noisy(self.noisy_prior, t))

    def probabilities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Clean-class probabilities q [K,H,W] float32 for each RGB frame, at its size."""
        x = to_tensor(np.stack([resize_image(im, self.size) for im in images]), self.device)
        # A batch of one takes another convolution path on the CPU, with other rounding:
        # run it as two copies, so that a frame's q never depends on how frames were
        # batched (a resumed or a torchrun-sharded clean writes the same bytes).
        x = x.repeat(2, 1, 1, 1) if len(x) == 1 else x
        p = predict(self.net, x, self.cfg, refine=self.refine)
        p = 0.5 * (p + predict(self.net, x.flip(-1), self.cfg, refine=self.refine).flip(-1))
        out = []
        for im, pi in zip(images, p):
            # The input was shrunk with pixel-centre geometry (PIL), so the way back is
            # align_corners=False; True would shift boundaries by up to half an input pixel.
            up = F.interpolate(pi[None], size=im.shape[:2], mode="bilinear", align_corners=False)
            q = up[0].cpu().numpy()
            if self.temperature != 1.0:
                q = sharpen(q, self.temperature, axis=0)
            if self.method == "ce":
                q = backward_correct(q, self.t_c)
            out.append(q.astype(np.float32))
        return out

    def clean_frame(
        self,
        index: int,
        frame_id: str,
        probs: np.ndarray,
        given: np.ndarray,
        neighbours: np.ndarray | None = None,
    ) -> CleaningResult:
        """Proposed mask, regions and scores from q [K,H,W] and the given mask [H,W];
        ``neighbours`` [K,H,W] is the mean q of the neighbouring frames, if any."""
        k = probs.shape[0]
        valid = given != self.ignore_index
        n_valid = max(int(valid.sum()), 1)
        given_k = np.where(valid, given, k).astype(np.uint8) if k < 255 else given
        cap = int(np.ceil(self.noise_rate * n_valid))
        scale = self.scale(given)
        bands = None if self.t_bands is None else boundary_bands(given_k, scale)
        rule = propose(
            probs,
            given_k,
            self.t_c if self.t_bands is None else self.t_bands,
            max_changed=cap,
            settings=self.settings,
            q_neighbours=neighbours,
            bands=bands,
            blocked=self.blocked,
            scale=scale,
        )
        proposed = np.where(valid, rule.proposed, given).astype(np.uint8)
        regions, info = rule.regions, rule.info
        if self.weak_reason is not None:
            proposed, regions, info = given.copy(), np.zeros_like(regions), []
        changed = int((proposed != given).sum())
        return CleaningResult(
            index,
            frame_id,
            probs.argmax(0).astype(np.uint8),
            probs.max(0).astype(np.float32),
            proposed,
            regions,
            info,
            noise_score=float(rule.p_wrong[valid].sum() / n_valid),
            changed_fraction=changed / n_valid,
        )

    @torch.no_grad()
    def affinity_map(self, image: np.ndarray, y: int, x: int) -> np.ndarray:
        """What DAR aggregates for pixel (y, x) of ``image`` (H,W,3): its affinity to every
        pixel, (H,W) float32 in [0, 1], upsampled from the affinity grid."""
        h, w = image.shape[:2]
        feats = self.net(to_tensor(resize_image(image, self.size), self.device)).features[1]
        grid = tuple(self.cfg.affinity.grid)
        f = to_grid(feats, grid)
        # The grid cell nearest to (y, x) under the align_corners mapping used to upsample.
        gy = int(round(y * (grid[0] - 1) / max(h - 1, 1)))
        gx = int(round(x * (grid[1] - 1) / max(w - 1, 1)))
        a = pixel_affinity(f, gy, gx)[:, None]
        up = F.interpolate(a, size=(h, w), mode="bilinear", align_corners=True)
        return up[0, 0].cpu().numpy().astype(np.float32)


def _sequence_of(dataset: Sequence) -> dict[int, str]:
    return {i: name for name, idx in sequence_map(dataset).items() for i in idx}


def clean(
    dataset: Sequence,
    checkpoint: os.PathLike | str | dict | Cleaner,
    *,
    settings: RuleSettings | None = None,
    device: str = "auto",
    indices: Sequence[int] | None = None,
    scope: Sequence[int] | None = None,
    batch_size: int = 4,
    check_data: bool = True,
) -> Generator[CleaningResult, None, None]:
    """Clean frames ``indices`` of ``dataset`` (default: all) in order; yields one result each.

    ``scope`` is every frame this model is responsible for (default: ``indices``); the
    check on the data (``check_on_data``) and the temporal neighbours come from it, so a
    resumed run that cleans only the remaining frames gives the same results. A model that
    fails either guard yields results with no proposals (``Cleaner.weak_reason``).
    Frames are read lazily and a window of three frames' probabilities is held.
    """
    num_classes = getattr(getattr(dataset, "classes", None), "num_classes", None)
    cleaner = (
        checkpoint
        if isinstance(checkpoint, Cleaner)
        else Cleaner(checkpoint, num_classes, device, settings)
    )
    wanted = list(range(len(dataset)) if indices is None else indices)
    scope = sorted(set(wanted if scope is None else scope) | set(wanted))
    if check_data and scope:
        cleaner.reset()
        if cleaner.weak_reason is None:
            cleaner.use_check(check_on_data(dataset, cleaner, scope))
    seq_of = _sequence_of(dataset)
    in_scope, wanted_set = set(scope), set(wanted)
    needed = sorted({j for i in wanted for j in (i - 1, i, i + 1) if j in in_scope})

    def neighbour(cur, other) -> bool:
        return (
            other is not None
            and abs(other[0] - cur[0]) == 1
            and seq_of.get(other[0]) == seq_of.get(cur[0])
            and other[2].shape == cur[2].shape
        )

    prev = cur = None
    for item in _chain(with_probs(dataset, cleaner, needed, batch_size)):
        if cur is not None and cur[0] in wanted_set:
            near = [x[2] for x in (prev, item) if neighbour(cur, x)]
            nb = np.mean(near, axis=0) if near else None
            yield cleaner.clean_frame(cur[0], cur[1].id, cur[2], cur[1].mask, nb)
        prev, cur = cur, item


def _chain(items):
    yield from items
    yield None
