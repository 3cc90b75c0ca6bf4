"""The labelled gallery shared by the Import and Training-data tabs.

One page of images with their scores, shown three ways that stay in sync: a
thumbnail gallery with score captions, a selected image shown large with its
score field (Enter saves), and an editable ``filename, score`` table. A summary
line and a score histogram sit above. The tabs decide what a page is and where
an edit goes (the import preview in memory, or ``data/`` on disk); this module
only draws pages and turns clicks into indices.

A "page" is any object shaped like :class:`workbench.dataset.GalleryPage`:
``items`` (each with ``filename``, ``score``, ``path``, ``thumbnail``), ``page``,
``pages`` and ``total``.

Also the small pieces several tabs share: :class:`StopFlags` (Stop buttons) and
:func:`progress_html` (a progress bar that does not cover the live plots).
"""
from __future__ import annotations

import html
import io
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr
import pandas as pd
from PIL import Image

from workbench.config import Settings
from workbench.dataset.scores import format_score
from workbench.dataset.summary import summarize_scores
from workbench.events import StopFlag
from workbench.fsutil import UnsafePath, atomic_write_bytes, require_inside
from workbench.images import ImageError, read_info, thumbnail
from workbench.ui import keyboard

log = logging.getLogger(__name__)

TABLE_HEADERS = ["filename", "score"]
SOURCE_HEADER = "label from"  # the optional third column: file name, star rating, typed, comparisons
# A label whose source is not recorded (a set from before the record, a score edited since) is still
# the person's own; the table says no more than it knows
OWN_LABEL = "your score"
PREVIEW_SIZE = 1024  # longest side of the large preview; full-size photos never go to the browser
METRIC_TABLES = ("#train-result", "#train-live-metrics", "#runs-details")
CSS = (
    # Gradio 6.31 lays a gallery's label over the top of its first row of thumbnails (the label floats, the
    # grid starts at the top): the grid of our galleries starts below the label instead
    # (its height is set inline from the gallery's height=: only !important shortens it to fit the block)
    ".labelled-gallery .grid-wrap { margin-top: var(--size-8); height: calc(100% - var(--size-8)) !important; }\n"
    # Gradio's Markdown tables break inside words ("SRC C", "24.09 0") when a column is narrow; the metric
    # tables keep their words whole and wrap only at spaces
    + ", ".join(f"{table} th, {table} td" for table in METRIC_TABLES)
    + " { word-break: normal; overflow-wrap: break-word; }")


class LatestBySession:
    """The latest value each browser session set (e.g. the photo it picked last), for the newest
    ``max_sessions`` sessions: a server left running for weeks sees a new session per page load,
    and an unbounded dict would keep every one. A forgotten session reads as ``default``."""

    def __init__(self, max_sessions: int = 256) -> None:
        self.max_sessions = max_sessions
        self._values: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def set(self, session: str, value: Any) -> None:
        with self._lock:
            self._values[session] = value
            self._values.move_to_end(session)
            while len(self._values) > self.max_sessions:
                self._values.popitem(last=False)  # the session that set nothing for longest

    def get(self, session: str, default: Any = None) -> Any:
        with self._lock:
            return self._values.get(session, default)

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


class StopFlags:
    """The StopFlag of each browser session's running job (an Event cannot live in gr.State).

    Call :meth:`start` when a job begins and :meth:`finish` in its ``finally``, so
    the table holds running jobs only.
    """

    def __init__(self) -> None:
        self._flags: dict[tuple[str, str], StopFlag] = {}
        self._lock = threading.Lock()

    def start(self, session: str, job: str) -> StopFlag:
        flag = StopFlag()
        with self._lock:
            self._flags[(session, job)] = flag
        return flag

    def stop(self, session: str, job: str) -> bool:
        with self._lock:
            flag = self._flags.get((session, job))
        if flag is not None:
            flag.set()
        return flag is not None

    def finish(self, session: str, job: str, flag: StopFlag) -> None:
        with self._lock:
            if self._flags.get((session, job)) is flag:  # not a newer job of the same session
                del self._flags[(session, job)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._flags)


def progress_html(fraction: float, text: str, *, failed: bool = False) -> str:
    """A plain progress bar with a line of text; Gradio's own progress overlay would hide the live plots."""
    colour = "#c0392b" if failed else "#4f7cac"
    width = max(0.0, min(fraction, 1.0)) * 100
    return (f'<div style="background:#e5e7eb;border-radius:4px;height:10px;overflow:hidden">'
            f'<div style="background:{colour};width:{width:.1f}%;height:10px"></div></div>'
            f'<div style="margin-top:4px">{html.escape(text)}</div>')


def user_error(error: BaseException | str) -> gr.Error:
    """A ``gr.Error`` for a slip the person can fix (weights not placed, a path outside the folders):
    shown in the page and logged as one line. Gradio prints the traceback of every ``gr.Error``
    unless it is made with ``print_exception=False``; anything not raised through here (a bug)
    keeps its full traceback in the server log."""
    message = str(error)
    log.warning("shown to the person: %s", " ".join(message.split()))
    return gr.Error(message, print_exception=False)


def received_file(path: str, settings: Settings) -> str:
    """``path`` if it names a file in Gradio's upload folder, the cache or ``data/``; else a gr.Error.

    Every callback that gets a path from the browser passes it through here:
    Gradio checks uploads too (app.create_server), this is the second lock.
    """
    from gradio.utils import get_upload_folder

    try:
        return str(require_inside(path, (get_upload_folder(), settings.cache_dir, settings.data_dir)))
    except UnsafePath as exc:
        raise user_error(exc) from None


def received_files(paths: Sequence[str] | None, settings: Settings) -> list[str]:
    return [received_file(path, settings) for path in paths or []]


def caption(item: Any) -> str:
    if getattr(item, "error", None) or item.thumbnail is None:
        return f"⚠️ unreadable · {item.filename}"
    badge = getattr(item, "badge", "")  # e.g. "in the set": an import preview's photo already in the training set
    # the score first: a narrow thumbnail cuts its caption short
    return f"{format_score(item.score) or 'unlabelled'} · " + (f"{badge} · " if badge else "") + item.filename


def placeholder_image(settings: Settings) -> Path:
    """A grey square standing in for an image that cannot be read (keeps gallery and table aligned)."""
    path = settings.thumbnails_dir / "_unreadable.png"
    if not path.exists():
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (200, 200, 200)).save(buffer, format="PNG")
        atomic_write_bytes(path, buffer.getvalue())
    return path


MIN_HISTOGRAM_TOP = 5  # the y axis reaches at least this, so its ticks are whole photos (never 0.2) even when empty


def histogram(bins: Sequence[Any], settings: Settings) -> gr.BarPlot:
    """The score histogram's bars (``bins``: objects with ``lo``, ``hi``, ``count``; none: all zero).

    Drawn in the browser from a few numbers, so an edit does not wait for a
    server-side matplotlib render (about 0.25 s each). A plain frame, never a
    ``gr.BarPlot(value=..., sort=...)`` update: Gradio 6.31 redraws a bar plot
    whose ``sort`` arrives with its value from the *previous* value, which left
    the histogram one edit behind. The bin order is set once, in :meth:`LabelledGallery.build`.
    The y axis runs from 0 (a bin of one photo shows a bar) to at least :data:`MIN_HISTOGRAM_TOP`.
    """
    frame = histogram_frame(bins, settings)
    return gr.BarPlot(frame, y_lim=histogram_top(frame))


def histogram_axis(bins: Sequence[Any], settings: Settings) -> gr.BarPlot:
    """The histogram's y axis alone, to send *before* a bare :func:`histogram_frame`: a bar plot update
    carrying props is drawn with the previous value (Gradio 6.31), so a new import preview whose tallest
    bar outgrew the axis showed the last preview's bars (an empty chart after the first scan)."""
    return gr.BarPlot(y_lim=histogram_top(histogram_frame(bins, settings)))


def histogram_top(frame: pd.DataFrame) -> list[int]:
    return [0, max(MIN_HISTOGRAM_TOP, *frame["images"])]


def histogram_frame(bins: Sequence[Any], settings: Settings) -> pd.DataFrame:
    bins = bins or summarize_scores([], settings.score_min, settings.score_max).histogram  # a domain, never empty
    return pd.DataFrame({"score": [_bin_label(b) for b in bins], "images": [b.count for b in bins]})


def _bin_label(b: Any) -> str:
    return f"{format_score(b.lo)}–{format_score(b.hi)}"


def preview_image(path: Path, settings: Settings) -> str | None:
    """A display-size copy of ``path`` from the thumbnail cache (None if unreadable)."""
    try:
        return str(thumbnail(path, PREVIEW_SIZE, settings.thumbnails_dir))
    except (ImageError, OSError):
        return None


@dataclass
class LabelledGallery:
    """The components of one labelled gallery; build with :meth:`build` inside a tab.

    ``page`` (a gr.State) holds the page shown now and ``selected`` the index of the
    selected image on it, or None.
    """

    settings: Settings
    page: gr.State
    selected: gr.State
    summary: gr.Markdown
    histogram: gr.BarPlot
    gallery: gr.Gallery
    page_label: gr.Markdown
    previous_page: gr.Button
    next_page: gr.Button
    preview: gr.Image
    name: gr.Markdown
    score: gr.Textbox
    previous: gr.Button
    next: gr.Button
    table: gr.Dataframe
    status: gr.Markdown
    extra_actions: gr.Row  # tab-specific buttons under the score field (delete, undo, ...)
    # when set, the table's third column says where each label came from (name -> words; else "your score"),
    # given the page's {filename: score} as read for it
    label_sources: Callable[[dict[str, float | None]], dict[str, str]] | None = None

    @classmethod
    def build(cls, prefix: str, settings: Settings, *, gallery_label: str, can_delete: bool = False,
              label_sources: Callable[[dict[str, float | None]], dict[str, str]] | None = None
              ) -> "LabelledGallery":
        """Lay out the gallery; every component gets ``elem_id = f"{prefix}-..."``."""
        gr.set_static_paths([settings.thumbnails_dir])  # thumbnails are immutable: serve, never copy
        page, selected = gr.State(None), gr.State(None)
        with gr.Row(equal_height=False):
            summary = gr.Markdown(elem_id=f"{prefix}-summary")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                gallery = gr.Gallery(
                    label=gallery_label, elem_id=f"{prefix}-gallery", columns=6, height=440,
                    elem_classes=["labelled-gallery"],
                    allow_preview=False, object_fit="cover", interactive=False, buttons=[],
                )
                with gr.Row():
                    previous_page = gr.Button("◀ Previous page", size="sm", elem_id=f"{prefix}-prev-page")
                    page_label = gr.Markdown(elem_id=f"{prefix}-page-label")
                    next_page = gr.Button("Next page ▶", size="sm", elem_id=f"{prefix}-next-page")
            with gr.Column(scale=2):
                preview = gr.Image(label="Selected image", elem_id=f"{prefix}-preview", height=340,
                                   interactive=False, type="filepath", buttons=["fullscreen"])
                name = gr.Markdown("Click an image to select it.", elem_id=f"{prefix}-name")
                score = gr.Textbox(
                    label=f"Score ({settings.score_min:g}–{settings.score_max:g}) — press Enter to save",
                    elem_id=f"{prefix}-score", max_lines=1, interactive=True,
                )
                with gr.Row():
                    previous = gr.Button("◀ Previous", elem_id=f"{prefix}-prev")
                    next_ = gr.Button("Next ▶", elem_id=f"{prefix}-next")
                extra_actions = gr.Row()
                gr.Markdown(keyboard.help_line(settings, can_delete=can_delete), elem_id=f"{prefix}-keys")
                status = gr.Markdown(elem_id=f"{prefix}-status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                headers = TABLE_HEADERS + ([SOURCE_HEADER] if label_sources else [])
                table = gr.Dataframe(
                    headers=headers, datatype=["str"] * len(headers), type="array", interactive=True,
                    static_columns=[0, 2] if label_sources else [0],
                    label="Scores on this page (edit a score cell and press Enter)",
                    elem_id=f"{prefix}-table", max_height=360,
                    column_widths=["55%", "20%", "25%"] if label_sources else ["70%", "30%"],
                )
            with gr.Column(scale=2):
                empty = histogram_frame([], settings)
                histogram_plot = gr.BarPlot(empty, x="score", y="images", label="Score distribution", height=260,
                                            elem_id=f"{prefix}-histogram", x_label_angle=-45,
                                            y_lim=[0, MIN_HISTOGRAM_TOP], y_axis_format="d", sort=list(empty["score"]))
        widget = cls(settings, page, selected, summary, histogram_plot, gallery, page_label, previous_page,
                     next_page, preview, name, score, previous, next_, table, status, extra_actions,
                     label_sources)
        widget._wire_selection()
        return widget

    # ---------------------------------------------------------------- drawing
    @property
    def page_outputs(self) -> list:
        """What :meth:`show` fills, in order."""
        return [self.page, self.selected, self.gallery, self.table, self.page_label,
                self.preview, self.name, self.score]

    def show(self, page: Any, selected: int | None = None, gallery_label: str | None = None) -> tuple:
        """Values for :attr:`page_outputs`: draw ``page`` and select ``selected`` (default: the first);
        ``gallery_label`` retitles the gallery (left as it is when None)."""
        items = page.items if page is not None else []
        # Always select something on a non-empty page: the browser keeps its own
        # highlight when told "no selection", which would then point at a stale image.
        selected = None if not items else min(max(selected or 0, 0), len(items) - 1)
        gallery = gr.Gallery(value=[(str(i.thumbnail or placeholder_image(self.settings)), caption(i))
                                    for i in items], selected_index=selected,
                             **({"label": gallery_label} if gallery_label else {}))
        rows = [[i.filename, format_score(i.score)] for i in items]
        if self.label_sources is not None:
            sources = self.label_sources({i.filename: i.score for i in items}) if items else {}
            rows = [row + [sources.get(i.filename, OWN_LABEL) if i.score is not None else ""]
                    for row, i in zip(rows, items)]
        if page is None or not page.total:
            label = "No images to show."
        else:
            everything = getattr(page, "total_all", page.total)
            label = f"Page {page.page + 1} of {page.pages} · {page.total} images"
            label += f" (of {everything}; the filter hides the rest)" if everything != page.total else ""
        blank = [[""] * (2 if self.label_sources is None else 3)]
        return (page, selected, gallery, rows or blank, label, *self._selection(page, selected))

    def _selection(self, page: Any, index: int | None) -> tuple:
        if page is None or index is None or not page.items:
            return None, "Click an image to select it.", ""
        item = page.items[index]
        where = f" — image {index + 1} of {len(page.items)} on this page"
        return (preview_image(item.path, self.settings), f"**{item.filename}**{where}",
                format_score(item.score))

    def keep_typed_score(self, shown: dict, old_page: Any, old_selected: int | None) -> dict:
        """Leave the score box alone in ``shown`` (a redraw) when it still shows the same photo with the
        same score on disk: the box may hold a score the user is typing."""
        old = self.selected_filename(old_page, old_selected)
        new_page, new_selected = shown[self.page], shown[self.selected]
        if old is None or self.selected_filename(new_page, new_selected) != old:
            return shown
        if old_page.items[old_selected].score != new_page.items[new_selected].score:
            return shown  # changed elsewhere (another tab, the CLI): show the new score
        return {**shown, self.score: gr.skip()}

    def selected_filename(self, page: Any, index: int | None) -> str | None:
        if page is None or index is None or index >= len(page.items):
            return None
        return page.items[index].filename

    # ------------------------------------------------------------- selection
    def _wire_selection(self) -> None:
        select_outputs = [self.selected, self.preview, self.name, self.score]

        def select(page, index: int | None) -> dict:
            return dict(zip(select_outputs, (index, *self._selection(page, index))))

        def on_click(page, evt: gr.SelectData):
            return select(page, evt.index)

        def step(delta: int):
            def move(page, index):
                if page is None or not page.items:
                    return select(page, None)
                index = 0 if index is None else (index + delta) % len(page.items)
                # setting selected_index only highlights; the browser fires select on clicks alone
                return {**select(page, index), self.gallery: gr.Gallery(selected_index=index)}
            return move

        self.gallery.select(on_click, [self.page], select_outputs, show_progress="hidden")
        for button, delta in ((self.previous, -1), (self.next, +1)):
            # "multiple", one at a time: arrow keys pressed faster than the server replies are queued in
            # order, not dropped, and each moves on from where the one before left the selection
            button.click(step(delta), [self.page, self.selected], [*select_outputs, self.gallery],
                         show_progress="hidden", trigger_mode="multiple", concurrency_limit=1)


def stop_button(running: bool) -> gr.Button:
    """A Stop button is red and clickable only while its job runs; grey and off otherwise."""
    return gr.Button(variant="stop" if running else "secondary", interactive=running)


def changes_text(changes: dict[str, Any], shown: int = 3) -> str:
    """``"55_rocket.jpg → 58.5, 40_coffee.jpg → 47"`` (and how many more): what a table edit changed."""
    parts = [f"{name} → {format_score(score) or 'unlabelled'}" for name, score in list(changes.items())[:shown]]
    more = len(changes) - shown
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def table_rows(value: Any) -> list[tuple[str, str]]:
    """The (filename, typed score) pairs of the table's value, blank rows dropped."""
    rows = value.values.tolist() if hasattr(value, "values") else (value or [])
    return [(str(r[0]), "" if r[1] is None else str(r[1]).strip()) for r in rows if r and r[0]]



def checked_image(max_pixels: int, **kwargs) -> gr.Image:
    """A gr.Image (``kwargs``) whose upload is refused from its header (Image.open reads only that) when it
    is over ``max_pixels``, before Gradio decodes it whole: a 76 KB PNG of 20000x20000 pixels held the
    server for 24 s and 2 GB inside gr.Image's own decode before our check could refuse it. (Its
    preprocess is wrapped on the instance: a subclass of a component makes Gradio write a .pyi beside us.)"""
    image = gr.Image(**kwargs)
    decode = image.preprocess

    def preprocess(payload):
        if payload is not None and getattr(payload, "path", None):
            try:
                read_info(payload.path, max_pixels, name=getattr(payload, "orig_name", None))
            except ImageError as exc:
                raise gr.Error(str(exc), print_exception=False) from exc
        return decode(payload)

    image.preprocess = preprocess
    return image
