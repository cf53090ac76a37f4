"""The trainer's form: layer pickers, model, checkpoint, device and epochs (magicgui).

The layer pickers list the viewer's layers and refresh when layers are added, removed,
moved or renamed. A layer known to hold true masks (``layers.is_truth``) is never the
default masks choice; the user may still pick it, and that choice is kept.
No torch here: the device list starts as ``auto``/``cpu`` and grows once the background
preload (``runtime``) has found the real devices.
"""

from __future__ import annotations

import weakref
from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, SpinBox
from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QComboBox, QGridLayout, QScrollArea, QVBoxLayout, QWidget

from jcas_napari.core.config import TrainConfig
from jcas_napari.napari import runtime
from jcas_napari.napari.layers import default_masks
from jcas_napari.napari.names import RESULT_LAYERS

SHIPPED_CHOICE = "fine-tune shipped model"
CHECKPOINT_CHOICE = "checkpoint file"
MODEL_CHOICES = (SHIPPED_CHOICE, "fresh: small", "fresh: deeplab-r101", CHECKPOINT_CHOICE)
CPU_NOTE = "Training on the CPU is slow: keep the epochs low."

TIPS = {
    "frames": "Image layer of RGB frames to train on and to clean (T, H, W, 3).",
    "masks": "Labels layer of the noisy class masks to correct. Layers marked or named as "
    "ground truth are never picked by default.",
    "model": "Start from the shipped small model (fine-tune), from a fresh network, or "
    "from a checkpoint file.",
    "checkpoint": "A jcas-napari checkpoint (.pt), e.g. one saved with 'Save model…'.",
    "device": "Where to train: 'auto' picks CUDA, then Apple MPS, then the CPU.",
    "warmup": "Stage 1 epochs: plain cross-entropy warm-up before the noise model.",
    "jcas": "Stage 2 epochs: JCAS training with the class and affinity noise matrices.",
    "min_steps": "Stage 2 runs at least this many steps: on a few frames it gets more epochs "
    "(the noise matrices need steps, not passes). 0: exactly the epochs above.",
    "stretch": "When the noise matrix at the start of stage 2 says the labels are heavily "
    "flipped, stage 2 runs up to 3x its epochs (a note says so). Border and shape noise "
    "never trigger it.",
    # The trainer's buttons.
    "start": "Fine-tune in the background, then clean the frames with the new model.",
    "cancel": "Stop at the next training step; the previous model stays in use.",
    "clean": "Propose corrections with the current model (the shipped one if none).",
    "save": "Write the fine-tuned model to a .pt file of your choice (outside the dataset).",
}


TIPS_OF_FIELDS = (
    "frames",
    "masks",
    "model",
    "checkpoint",
    "device",
    "warmup",
    "jcas",
    "min_steps",
    "stretch",
)


def _layers_of(viewer_ref: weakref.ref, kind: str):
    """A magicgui choices callable: (name, layer) of the viewer's layers of ``kind``."""

    def choices(_widget) -> list[tuple[str, object]]:
        import napari.layers

        viewer = viewer_ref()
        cls = getattr(napari.layers, kind)
        if viewer is None:
            return []
        return [
            (lay.name, lay)
            for lay in viewer.layers
            if isinstance(lay, cls) and lay.name not in RESULT_LAYERS
        ]

    return choices


class TrainerForm(Container):
    """The inputs of a training run, as magicgui widgets (``.native`` is the QWidget)."""

    def __init__(self, viewer) -> None:
        ref = weakref.ref(viewer)  # the viewer owns this form's widget: no strong cycle
        self.frames = ComboBox(label="frames", choices=_layers_of(ref, "Image"))
        self.masks = ComboBox(label="noisy masks", choices=_layers_of(ref, "Labels"))
        self.model = ComboBox(label="model", choices=MODEL_CHOICES, value=SHIPPED_CHOICE)
        self.checkpoint = FileEdit(mode="r", filter="PyTorch checkpoint (*.pt *.pth)")
        self.checkpoint.label = "checkpoint"
        self.device = ComboBox(label="device", choices=list(runtime.CHEAP_DEVICES))
        self.device_note = Label(value="")
        self.warmup = SpinBox(label="warm-up epochs", min=0, max=1000, value=0)
        self.jcas = SpinBox(label="JCAS epochs", min=0, max=1000, value=2)
        tc = TrainConfig()
        self.min_steps = SpinBox(
            label="at least JCAS steps", min=0, max=100_000, value=tc.min_steps_jcas
        )
        self.stretch = CheckBox(text="longer JCAS stage on flipped labels", value=tc.stretch_stage2)
        super().__init__(
            widgets=[
                self.frames,
                self.masks,
                self.model,
                self.checkpoint,
                self.device,
                self.device_note,
                self.warmup,
                self.jcas,
                self.min_steps,
                self.stretch,
            ]
        )
        for name in TIPS_OF_FIELDS:
            getattr(self, name).tooltip = TIPS[name]
        # FileEdit is a line edit and a button: each carries the tip.
        self.checkpoint.line_edit.tooltip = TIPS["checkpoint"]
        self.checkpoint.choose_btn.tooltip = "Browse for the checkpoint file."
        self.checkpoint.choose_btn.text = "Browse…"  # the name the README and errors use
        self.chosen_masks = ""  # the masks the user picked (then a truth layer is kept)
        self.masks.native.activated.connect(self._masks_chosen)  # user picks only
        self.model.changed.connect(self._model_changed)
        self.device.changed.connect(self._device_changed)
        self._model_changed(self.model.value)
        self._device_changed(self.device.value)
        self.margins = (0, 0, 0, 0)
        self.device_note.native.setWordWrap(True)
        for combo in (self.frames, self.masks, self.model, self.device):
            # Long layer names must not widen the dock: the pickers shrink, with the full
            # name in the list that drops down.
            combo.native.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.native.setMinimumContentsLength(8)

    # ------------------------------------------------------------------ layer pickers

    def refresh_layers(self) -> None:
        """Re-read the layer lists; keep the choices, never default to true masks."""
        current = self.masks.native.currentText()
        self.frames.reset_choices()  # keeps the current layer if it is still there
        self.masks.reset_choices()
        layers = [layer for layer in self.masks.choices if layer is not None]
        name = default_masks(layers, current, self.chosen_masks) or ""
        index = self.masks.native.findText(name) if name else -1
        # Index -1 leaves the picker empty (value None): better no masks than the truth.
        self.masks.native.setCurrentIndex(index)

    def _masks_chosen(self, index: int) -> None:
        self.chosen_masks = self.masks.native.itemText(index)

    def selected_layers(self) -> tuple:
        """The frames and masks layers chosen (ValueError if one is not)."""
        frames, masks = self.frames.value, self.masks.value
        for what, layer in (("frames", frames), ("noisy masks", masks)):
            if layer is None:
                raise ValueError(f"choose the {what} layer")
        return frames, masks

    # ------------------------------------------------------------------ model and device

    def _model_changed(self, choice: str) -> None:
        self.checkpoint.visible = choice == CHECKPOINT_CHOICE

    def _device_changed(self, device: str | None) -> None:
        others = [c for c in self.device.choices if c not in runtime.CHEAP_DEVICES]
        cpu = device == "cpu" or (device == "auto" and not others)
        self.device_note.value = CPU_NOTE if cpu else ""
        self.device_note.visible = cpu

    def set_devices(self, devices: list[str]) -> None:
        """The device list once torch is loaded; the current choice stays if present."""
        current = self.device.value
        self.device.choices = devices
        if current in devices:
            self.device.value = current
        self._device_changed(self.device.value)

    def source(self) -> tuple[str, str | None]:
        """What the model picker shows: its choice, and the file if it is a checkpoint."""
        choice = self.model.value
        return choice, str(self.checkpoint.value) if choice == CHECKPOINT_CHOICE else None

    def model_to_clean(self, shipped: Path) -> str:
        """The model the picker shows, to clean with: the shipped one or the chosen
        checkpoint file (ValueError for a random start, which is no model yet)."""
        init = self._source(shipped)[1]
        if init is None:
            raise ValueError(
                "no model to clean with yet: press Start to train one, or choose the "
                "shipped model or a checkpoint file"
            )
        return init

    def config_and_init(self, shipped: Path):
        """The training config with this form's schedule, and the checkpoint to start from
        (None: random init)."""
        cfg, init = self._source(shipped)
        tc = cfg.train
        tc.epochs_warmup, tc.epochs_jcas = self.warmup.value, self.jcas.value
        tc.min_steps_jcas, tc.stretch_stage2 = self.min_steps.value, self.stretch.value
        return cfg, init

    def _source(self, shipped: Path):
        from jcas_napari.core.config import load_config

        choice = self.model.value
        if choice == SHIPPED_CHOICE:
            return load_config("small"), str(shipped)
        if choice == CHECKPOINT_CHOICE:
            return load_config("small"), str(check_checkpoint_file(self.checkpoint.value))
        return load_config(choice.split(": ")[1]), None


class VerticalScroll(QScrollArea):
    """Scrolls up and down only, and is as wide as its content needs: a tall form keeps
    the dock short, a narrow dock does not hide the buttons' right half."""

    def __init__(self) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        hint = super().minimumSizeHint()
        if self.widget() is not None:  # read now: napari's style sheet changes the sizes
            bar = self.verticalScrollBar().sizeHint().width()
            hint.setWidth(self.widget().minimumSizeHint().width() + bar + 2 * self.frameWidth())
        return hint


def column_of(parts) -> QWidget:
    """The widgets ``parts`` one under the other; a tuple in ``parts`` is a group of
    buttons, laid out two per row."""
    inner = QWidget()
    column = QVBoxLayout(inner)
    for part in parts:
        if isinstance(part, tuple):
            grid = QGridLayout()
            for i, button in enumerate(part):
                grid.addWidget(button, i // 2, i % 2)
            column.addLayout(grid)
        else:
            column.addWidget(part)
    return inner


def scrolling_column(parts) -> VerticalScroll:
    """:func:`column_of` in a ``VerticalScroll``."""
    scroll = VerticalScroll()
    scroll.setWidget(column_of(parts))
    return scroll


def check_checkpoint_file(path: Path | str | None) -> Path:
    """A cheap look at a chosen checkpoint before a run starts (ValueError if wrong).

    The same header check as the core's loader, without torch, so a wrong file gets one
    line naming it before any worker starts; a damaged archive is reported by the loader.
    """
    from jcas_napari.data.fsutil import checkpoint_file_problem
    from jcas_napari.napari.trainer_worker import file_line

    p = Path(path) if path is not None else None
    if p is None or str(p) in ("", "."):  # FileEdit's empty value is Path(".")
        raise ValueError("choose a checkpoint file (Browse…)")
    problem = checkpoint_file_problem(p)
    if problem:
        raise ValueError(file_line(p, problem))
    return p
