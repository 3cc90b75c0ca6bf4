"""Tab 4: score new photos with a trained run or the ready NIMA scorer.

**One photo**: its score on the scorer's scale, percentile among the training
scores, good/bad at a threshold you set, the distribution for distribution
models, where the model looked (Grad-CAM, or occlusion for models without gradients), and an optional caption and
critique. **Many photos**: a gallery sorted best first, a table and a CSV, with
progress and Stop; click a photo in the gallery to see where the model looked.
Callbacks only call ``workbench.predict`` and ``workbench.describe``.
"""
from __future__ import annotations

import html
import logging
import tempfile
import time
from pathlib import Path

import gradio as gr
import pandas as pd
from matplotlib.figure import Figure

from workbench.config import Settings
from workbench.dataset.ratings import STAR_METHODS, write_star_ratings
from workbench.dataset.store import ScoreStore
from workbench.describe.critique import LLMConfig
from workbench.errors import WorkbenchError
from workbench.events import Finished, Progress
from workbench.images import ImageError, thumbnail
from workbench.predict import (
    NIMA_ID,
    BatchResult,
    Scorer,
    ScoreRow,
    ScorerUnavailable,
    cached_scorer,
    chance_warning,
    csv_text,
    default_scorer_id,
    explain,
    score_images,
    score_one,
    scorer_choices,
)
from workbench.ui import cull_view, keyboard
from workbench.ui.widgets import (
    LatestBySession,
    StopFlags,
    checked_image,
    progress_html,
    received_file,
    received_files,
    stop_button,
    user_error,
)

TITLE = "Predict"
UPDATE_EVERY = 0.25  # seconds between progress updates sent to the browser
TABLE_COLUMNS = ["rank", "file", "score", "std", "percentile", "verdict", "error"]

INTRO = """Score new photos. The **nima** scorer (trained on the AVA photo contest, 1-10) needs no
training, only its weights file; a run you trained scores on your own scale. Drop one photo for a close look,
or many to cull a shoot."""


NO_LLM = ("No language model is configured: fill in **Base URL** and **Model** above (and the key for a "
          "hosted service), then press Describe again.")


def caption_hint(note: str, settings: Settings) -> str:
    """The engine's note on a missing caption, in UI terms (no command lines)."""
    if "not available offline" not in note:
        return note
    from workbench.describe.captions import local_folder, model_page

    model = settings.caption_model
    if Path(model).is_absolute():  # a folder of one's own, set in describe.caption_model
        return (f"BLIP's files are not in {model} (describe.caption_model). Put the model folder there, or "
                f"untick “Caption with BLIP”; the critique works without it.")
    folder = local_folder(model, settings)
    return (f"BLIP's files are not on this machine. Download them from {model_page(model)} (“Files and "
            f"versions”: config.json, model.safetensors and the processor files) into a folder named "
            f"“{folder.name}” in the weights folder, i.e. {folder}; or untick “Caption with BLIP”, the "
            f"critique works without it.")


STOP_FLAGS = StopFlags()
log = logging.getLogger(__name__)


# ----------------------------------------------------------- formatting
SCORER_INFO = "default: your best run by held-out SRCC if above 0, else nima"


def switch_note(before: str | None, after: str, shown: list, options: list) -> str:
    """The scorer picker's info line: says so when the run it showed (``before``, labelled as in
    ``shown``) was deleted meanwhile and it moved to ``after`` (labelled as in ``options``)."""
    ids = {value: label for label, value in options}
    if not before or before in ids:
        return SCORER_INFO
    old = dict((value, label) for label, value in shown or []).get(before, before)
    why = "no run is left" if after == NIMA_ID else "best by held-out SRCC"
    return f"⚠ Run “{old}” was deleted; now using “{ids.get(after, after)}” ({why})."


def scorer_markdown(scorer: Scorer) -> str:
    low, high = scorer.scale
    kind = "score distribution (10 bins)" if scorer.has_distribution else "a single score"
    return (f"**{html.escape(scorer.name)}** · scale {low:g}-{high:g} · predicts {kind}  \n"
            f"{html.escape(scorer.weights_note)}")  # the note names the weights itself


def row_markdown(row: ScoreRow, scorer: Scorer, threshold: float) -> str:
    if row.error is not None:
        return f"⚠ **Cannot score this file:** {html.escape(row.error)}"
    low, high = scorer.scale
    lines = [f"## {row.score:.2f} <small>on {low:g}-{high:g}</small>",
             f"**{row.verdict.upper()}** at the threshold {threshold:g}"]
    if row.std is not None:
        lines.append(f"Spread of opinion (std): ±{row.std:.2f}")
    if row.percentile is not None:
        lines.append(f"Higher than **{row.percentile:.0f}%** of the training set's scores")
    else:
        lines.append("No percentile: this scorer was not trained on your photos")
    if row.text_source == "none":
        lines.append("This photo had **no text**: scored from the image alone")
    elif row.text_source is not None:
        lines.append(f"Text used: from {html.escape(row.text_source)}")
    return "  \n".join(lines)


def distribution_figure(row: ScoreRow, scorer: Scorer) -> Figure | None:
    """Bars over the 10 score bins, the mean as a line and ±1 std shaded."""
    if row.distribution is None or not scorer.bin_centres:
        return None
    centres = scorer.bin_centres
    width = (centres[-1] - centres[0]) / 9 * 0.8
    fig = Figure(figsize=(5, 2.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.bar(centres, row.distribution, width=width, color="#4f7cac")
    ax.axvline(row.score, color="#c0392b", label=f"mean {row.score:.2f}")
    if row.std is not None:
        ax.axvspan(row.score - row.std, row.score + row.std, color="#c0392b", alpha=0.12,
                   label=f"±1 std ({row.std:.2f})")
    ax.set_xlabel("score")
    ax.set_ylabel("probability")
    # explicit y domain with headroom: the legend sits above the bars, not on them
    ax.set_ylim(0, max(row.distribution) * 1.35)
    # the title is drawn in the figure: Gradio's block label would cover the plot's top
    ax.set_title("Predicted score distribution", fontsize=10, loc="left")
    ax.legend(fontsize=8, frameon=False, loc="upper right", ncols=2)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def results_table(result: BatchResult) -> pd.DataFrame:
    """What the CSV holds, one row per file; no std column for a scorer that gives one score."""
    rows = [{"rank": row.rank, "file": Path(row.path).name, "score": _round(row.score, 3), "std": _round(row.std, 3),
             "percentile": _round(row.percentile, 1), "verdict": row.verdict or "", "error": row.error or ""}
            for row in result.rows]
    columns = [c for c in TABLE_COLUMNS if c != "std" or any(r.std is not None for r in result.rows)]
    return pd.DataFrame(rows, columns=columns)


def display_names(result: BatchResult, uploads: list[str]) -> dict[str, str]:
    """An uploaded photo by the name it had on the person's computer (Gradio keeps it as the
    copy's file name); a photo from a typed folder by its full path."""
    uploaded = {str(Path(u)) for u in uploads}
    return {row.path: Path(row.path).name for row in result.rows if str(Path(row.path)) in uploaded}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def gallery_items(result: BatchResult, settings: Settings) -> tuple[list[tuple[str, str]], list[ScoreRow]]:
    """(thumbnail, caption) of the scored photos, best first, and the rows shown, in the same order
    (a photo whose thumbnail cannot be made stays in the table only)."""
    items, shown = [], []
    for row in result.scored:
        try:
            image = str(thumbnail(row.path, settings.thumbnail_size, settings.thumbnails_dir))
        except (ImageError, OSError):
            continue
        items.append((image, f"{row.score:.2f} · {Path(row.path).name}"))
        shown.append(row)
    return items, shown


def csv_file(result: BatchResult, names: dict[str, str]) -> str:
    folder = Path(tempfile.mkdtemp(prefix="workbench-scores-"))
    path = folder / "scores.csv"
    path.write_text(csv_text(result, names, for_spreadsheet=True), encoding="utf-8")  # opened in spreadsheets
    return str(path)


# ---------------------------------------------------------------- build
def build(settings: Settings) -> None:
    gr.Markdown(INTRO)
    choices = scorer_choices(settings)
    with gr.Row(equal_height=False):
        scorer_id = gr.Dropdown(choices, value=default_scorer_id(settings), label="Scorer",
                                info=SCORER_INFO, scale=4, elem_id="predict-scorer")
    picked_by_person = gr.State(False)  # until the person picks, the default follows the run store
    shown_choices = gr.State(choices)  # the picker's (label, id) pairs: names a run deleted meanwhile
    noted = gr.State(False)  # the picker's info line says a run was deleted
    scorer_info = gr.Markdown(elem_id="predict-scorer-info")
    threshold = gr.Slider(1, 10, value=5.1, step=0.01, label="Good from (threshold)", elem_id="predict-threshold")

    with gr.Tab("One photo"):
        with gr.Row(equal_height=False):
            photo = checked_image(settings.max_pixels, type="filepath", label="Photo", sources=["upload", "clipboard"],
                                  height=360, elem_id="predict-photo")
            with gr.Column():
                # one line, so Enter re-scores (in a taller box Enter only adds a line break)
                photo_text = gr.Textbox(label="Text for this photo (image+text runs only; Enter re-scores)",
                                        lines=1, max_lines=4,
                                        placeholder="keywords, a title, a note… empty: its scores.csv text, XMP "
                                                    "keywords/title/description or cached caption, if any",
                                        elem_id="predict-text")
                verdict = gr.Markdown(elem_id="predict-result")
                distribution = gr.Plot(label="Predicted score distribution", show_label=False,
                                       elem_id="predict-distribution")
        with gr.Accordion("Why this score? (where the model looked)", open=False):
            explain_button = gr.Button("Show where the model looked", elem_id="predict-explain")
            opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heatmap opacity", elem_id="predict-opacity")
            overlay = gr.Image(label="Explanation overlay", interactive=False, height=420, elem_id="predict-overlay")
            explain_note = gr.Markdown(elem_id="predict-explain-note")
        with gr.Accordion("Caption and critique (optional)", open=False):
            gr.Markdown("A BLIP caption and written feedback from any OpenAI-compatible chat server: fill in "
                        "**Base URL** and **Model** below (a local Ollama: `http://127.0.0.1:11434/v1` and "
                        "`llava`; a hosted service: its URL, model and your key). The key stays in this "
                        "browser session; it is never saved.")
            with gr.Row():
                want_caption = gr.Checkbox(value=True, label="Caption with BLIP", elem_id="predict-caption")
                send_image = gr.Checkbox(value=False, label="Send the photo (vision models only)")
                language = gr.Textbox(value=settings.language, label="Language")
            with gr.Row():
                base_url = gr.Textbox(value=settings.llm_base_url, label="Base URL",
                                      placeholder="http://127.0.0.1:11434/v1", elem_id="predict-llm-url")
                model = gr.Textbox(value=settings.llm_model, label="Model", placeholder="llava",
                                   elem_id="predict-llm-model")
                api_key = gr.Textbox(type="password", label="API key (this session only)",
                                     placeholder="empty: OPENAI_API_KEY from the environment",
                                     elem_id="predict-llm-key")
            describe_button = gr.Button("Describe", elem_id="predict-describe")
            description = gr.Markdown(elem_id="predict-description")

    with gr.Tab("Many photos"):
        with gr.Row():
            uploads = gr.File(file_count="multiple", file_types=["image"], type="filepath", height=180,
                              label="Photos", elem_id="predict-uploads")  # a long list scrolls, Score all stays near
            folder = gr.Textbox(label="…or a folder on this computer", placeholder="/home/me/Pictures/shoot",
                                elem_id="predict-folder")
        with gr.Row():
            start = gr.Button("Score all", variant="primary", elem_id="predict-start")
            stop = gr.Button("Stop", variant="secondary", interactive=False, elem_id="predict-stop")  # on while scoring
        progress = gr.HTML(elem_id="predict-progress")
        with gr.Row(equal_height=False):
            gallery = gr.Gallery(label="Best first", columns=5, height=440, allow_preview=False,
                                 object_fit="cover", interactive=False, elem_id="predict-gallery", scale=3)
            with gr.Column(scale=2):
                picked = gr.Markdown("Click a photo to see where the model looked.", elem_id="predict-picked")
                picked_opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heatmap opacity",
                                           elem_id="predict-picked-opacity")
                picked_overlay = gr.Image(label="Explanation overlay", interactive=False, height=360,
                                          elem_id="predict-picked-overlay")
                with gr.Group(elem_id="predict-label-panel"):  # the model's score corrected: a label to learn from
                    with gr.Row():
                        previous = gr.Button("◀ Previous", size="sm", elem_id="predict-prev")
                        next_ = gr.Button("Next ▶", size="sm", elem_id="predict-next")
                    your_score = gr.Textbox(label=f"Your score ({settings.score_min:g}–{settings.score_max:g}) — "
                                                  "Enter adds the photo to the training set",
                                            max_lines=1, elem_id="predict-score")
                    undo_button = gr.Button("Undo", size="sm", elem_id="predict-undo")
                gr.Markdown(keyboard.help_line(settings, can_delete=False, undo=True,
                                               enter="Enter adds it to the training set"), elem_id="predict-keys")
                label_note = gr.Markdown(elem_id="predict-label-note")
        table = gr.Dataframe(headers=TABLE_COLUMNS, interactive=False, wrap=True, elem_id="predict-table")
        download = gr.File(label="CSV", interactive=False, elem_id="predict-csv")
        with gr.Row(equal_height=True):  # photo managers (Lightroom, darktable...) read these sidecars
            stars_by = gr.Radio(list(STAR_METHODS), value=settings.stars_out, label="Stars by",
                                info="thresholds: five equal parts of the scale; percentile: fifths of this batch",
                                elem_id="predict-stars-by", scale=2)
            write_xmp = gr.Button("Write stars to XMP sidecars (folder photos)", elem_id="predict-write-xmp", scale=1)
        xmp_note = gr.Markdown(elem_id="predict-xmp-note")
        cull_view.build(settings, scorer_id, uploads, folder)  # same photos, same scorer: group, flag, pick

    explanation, picked_explanation, shown_rows = gr.State(None), gr.State(None), gr.State(None)
    picked_index, last_label = gr.State(None), gr.State(None)  # the selected photo; the last label, for Undo

    # ------------------------------------------------------------ callbacks
    def load(chosen: str):
        try:
            scorer = cached_scorer(chosen, settings)
        except ScorerUnavailable as exc:
            return f"⚠ {html.escape(str(exc))}", gr.Slider()
        low, high = scorer.scale
        step = 0.01 if high - low <= 20 else 0.1
        warning = chance_warning(chosen, settings)  # beside the picker: Predict and Cull both score with it
        shown = (f"**{warning}**\n\n" if warning else "") + scorer_markdown(scorer)
        return shown, gr.Slider(minimum=low, maximum=high, value=scorer.default_threshold, step=step)

    def refresh_choices(chosen: str, picked: bool, shown: list):
        """The run store as it is now; the default follows it until the person picks a scorer. A run
        deleted meanwhile (in Runs, by the CLI) is replaced by the default, and the info line says so."""
        options = scorer_choices(settings)
        keep = picked and chosen in [value for _, value in options]
        value = chosen if keep else default_scorer_id(settings)
        note = switch_note(chosen, value, shown, options)
        return gr.Dropdown(choices=options, value=value, info=note), options, note != SCORER_INFO

    def score_photo(chosen: str, limit: float, path: str | None, text: str = ""):
        if not path:
            return "", None, None, None, ""
        path = received_file(path, settings)
        try:
            scorer = cached_scorer(chosen, settings)
        except ScorerUnavailable as exc:
            # In the result's place, not gr.Error: an error badge would leave the last scorer's
            # score on screen, read as this scorer's.
            return f"⚠ **Cannot score with this scorer:** {html.escape(str(exc))}", None, None, None, ""
        row = score_one(path, scorer, settings, threshold=limit, text=text)
        figure = distribution_figure(row, scorer)  # none for a single score: hide the empty box
        return (row_markdown(row, scorer, limit), gr.Plot(figure, visible=figure is not None), None, None, "")

    def explain_photo(chosen: str, path: str | None, alpha: float):
        if not path:
            return None, None, "Choose a photo first."
        path = received_file(path, settings)
        try:
            result = explain(path, _scorer(chosen), settings)
        except ImageError as exc:
            return None, None, f"⚠ {html.escape(str(exc))}"
        if result.heatmap is None:
            return None, result, f"ℹ {html.escape(result.reason)}"
        return result.overlay(alpha), result, result.note

    def reblend(result, alpha: float):
        return result.overlay(alpha) if result is not None and result.heatmap is not None else gr.skip()

    def describe(chosen, limit, path, caption_on, send, lang, url, name, key):
        from workbench.describe.report import describe_photo

        if not path:
            return "Choose a photo first."
        path, scorer = received_file(path, settings), _scorer(chosen)
        row = score_one(path, scorer, settings, threshold=limit)
        if row.error is not None:
            return f"⚠ {html.escape(row.error)}"
        llm = LLMConfig.from_settings(settings, base_url=url or None, model=name or None, api_key=key or None,
                                      send_image=bool(send), language=lang or settings.language)
        found = describe_photo(path, score=row.score, scale=scorer.scale, threshold=limit, settings=settings,
                               caption=caption_on, llm=llm, scorer_about=scorer.about)
        caption = (f"**Caption:** {html.escape(found.caption)}" if found.caption else
                   f"**Caption:** none. {html.escape(caption_hint(found.caption_note, settings))}")
        critique = found.critique if found.critique is not None else (
            NO_LLM if not llm.configured else found.critique_note)
        return f"{caption}\n\n**Critique** (score {row.score:.2f}):\n\n{critique}"

    def score_many(chosen: str, limit: float, files: list[str] | None, typed_folder: str, request: gr.Request):
        """Yields updates of progress, gallery, table, download and shown_rows (the batch's scorer id and
        its gallery rows)."""
        inputs = received_files(files, settings) + ([typed_folder.strip()] if typed_folder and typed_folder.strip() else [])
        if not inputs:
            yield {progress: progress_html(0, "Add photos or type a folder first.")}
            return
        session = request.session_hash or ""
        flag = STOP_FLAGS.start(session, "score")
        try:
            scorer = cached_scorer(chosen, settings)
            last, result = 0.0, None
            for event in score_images(inputs, scorer, settings, stop=flag, threshold=limit):
                if isinstance(event, Progress) and time.monotonic() - last > UPDATE_EVERY:
                    last = time.monotonic()
                    yield {progress: progress_html(event.fraction, f"{event.done} of {event.total} · {event.message}")}
                elif isinstance(event, Finished):
                    result = event.result
            word = "Stopped" if result.stopped else "Done"
            text = f"{word}: {len(result.scored)} scored, {len(result.failed)} could not be scored (see the table)."
            items, shown = gallery_items(result, settings)
            names = display_names(result, list(files or []))
            yield {progress: progress_html(1.0, text), gallery: items, table: results_table(result),
                   download: csv_file(result, names) if result.rows else None, shown_rows: (result.scorer_id, shown)}
        except WorkbenchError as exc:  # the person can fix these: say what to do
            yield {progress: progress_html(1, f"Could not score: {exc}", failed=True)}
        except Exception as exc:  # a bug: say so, keep what is shown, details in the server log
            log.exception("scoring %d input(s) with %s failed", len(inputs), chosen)
            yield {progress: progress_html(1, f"Scoring failed: {exc}", failed=True)}
        finally:
            STOP_FLAGS.finish(session, "score", flag)

    def open_page():
        chosen, options = default_scorer_id(settings), scorer_choices(settings)
        info, slider = load(chosen)
        return gr.Dropdown(choices=options, value=chosen, info=SCORER_INFO), info, slider, options, False

    def stop_batch(request: gr.Request) -> None:
        STOP_FLAGS.stop(request.session_hash or "", "score")

    # session -> the photo selected last. An explanation is slow (seconds on a CPU); one that finishes
    # after the person has moved on must not write the earlier photo's title over the current one.
    latest_pick = LatestBySession()

    def select_photo(shown: tuple[str, list[ScoreRow]] | None, index: int | None, request: gr.Request | None = None):
        """Quick: which photo, its score, an empty box for the person's; the explanation follows."""
        if request is not None:
            latest_pick.set(request.session_hash or "", index)
        rows = (shown or (None, []))[1]
        if not rows or index is None or not 0 <= index < len(rows):
            return None, "Click a photo to see where the model looked.", "", None
        row = rows[index]  # the previous photo's overlay goes at once: it no longer belongs to the title
        return index, f"**{Path(row.path).name}**: {row.score:.2f} ({row.verdict}) — photo {index + 1} of {len(rows)}", "", None

    def explain_picked(shown: tuple[str, list[ScoreRow]] | None, index: int | None, alpha: float, request: gr.Request):
        def moved_on() -> bool:
            return latest_pick.get(request.session_hash or "", index) != index

        if moved_on():  # a newer selection's explanation is queued behind this one
            return gr.skip(), gr.skip(), gr.skip()
        shown_now = explain_row(shown, index, alpha)
        return (gr.skip(), gr.skip(), gr.skip()) if moved_on() else shown_now  # moved on while it was computed

    def explain_row(shown: tuple[str, list[ScoreRow]] | None, index: int | None, alpha: float):
        batch_scorer, rows = shown or (None, [])
        if not rows or index is None or not 0 <= index < len(rows):
            return gr.skip(), None, None
        row = rows[index]
        title = f"**{Path(row.path).name}**: {row.score:.2f} ({row.verdict}) — photo {index + 1} of {len(rows)}"
        try:  # the scorer that scored this batch, whatever the dropdown shows now
            found = explain(row.path, cached_scorer(batch_scorer, settings), settings)
        except WorkbenchError as exc:  # e.g. the photo was moved since it was scored
            return f"{title}  \n⚠ {html.escape(str(exc))}", None, None
        if found.heatmap is None:
            return f"{title}  \nℹ {html.escape(found.reason)}", None, found
        return f"{title}  \n{found.note}", found.overlay(alpha), found

    def step(delta: int):
        def move(shown, index, request: gr.Request):
            rows = (shown or (None, []))[1]
            if not rows:
                return None, "Score some photos first.", "", None, gr.skip()
            index = 0 if index is None else (index + delta) % len(rows)
            return *select_photo(shown, index, request), gr.Gallery(selected_index=index)
        return move

    def add_label(shown, index: int | None, typed: str):
        rows = (shown or (None, []))[1]
        if not rows or index is None or not 0 <= index < len(rows):
            return "Select a photo first (click it, or ←/→).", gr.skip()
        if not typed.strip():
            return "Type your score (or press a number key) first.", gr.skip()
        store = ScoreStore.from_settings(settings)
        try:
            name, copied, before = store.add_labelled(rows[index].path, typed)
        except (WorkbenchError, OSError) as exc:
            return f"⚠ {html.escape(str(exc))}", gr.skip()
        score = store.get(name).score
        done = "added to the training set" if copied else "already in the training set: its score is now yours"
        return f"✓ **{html.escape(name)}** {done} ({score:g}). Z or Undo takes it back.", (name, copied, before)

    def take_back(last):
        if not last:
            return "Nothing to undo.", None
        name, copied, before = last
        try:
            ScoreStore.from_settings(settings).take_back_labelled(name, copied, before)
        except (WorkbenchError, OSError) as exc:
            return f"⚠ {html.escape(str(exc))}", last
        return (f"↶ {html.escape(name)} " + ("removed from the training set (it is in the trash)." if copied
                                             else "has its earlier score back.")), None

    def write_sidecars(shown: tuple[str, list[ScoreRow]] | None, method: str, typed_folder: str) -> str:
        batch_scorer, rows = shown or (None, [])
        root = Path(typed_folder.strip()).expanduser().resolve() if typed_folder and typed_folder.strip() else None
        items = [(r.path, r.score) for r in rows if root is not None and Path(r.path).resolve().is_relative_to(root)]
        if not items:
            return "Score a folder first: sidecars go next to the photos in it (uploads are only copies)."
        done = write_star_ratings(items, method, *cached_scorer(batch_scorer, settings).scale,
                                  new_sidecar=settings.new_sidecar)
        failed = "".join(f"\n- ⚠ {html.escape(str(p))}: {html.escape(e)}" for p, e in done.failed)
        return f"Wrote {len(done.written)} XMP sidecars (stars by {method}) in `{root}`.{failed}"

    def _scorer(chosen: str) -> Scorer:
        try:
            return cached_scorer(chosen, settings)
        except ScorerUnavailable as exc:
            raise user_error(exc) from None

    # --------------------------------------------------------------- wiring
    one_photo = [scorer_id, threshold, photo, photo_text]
    scorer_id.change(load, scorer_id, [scorer_info, threshold]).then(
        score_photo, one_photo, [verdict, distribution, overlay, explanation, explain_note])
    # the person's own pick: the default no longer follows the store, and a "was deleted" note is old news
    # (the picker itself is updated only to take such a note away)
    scorer_id.input(lambda was_noted: (True, gr.Dropdown(info=SCORER_INFO) if was_noted else gr.skip(), False),
                    noted, [picked_by_person, scorer_id, noted],
                    show_progress="hidden")
    # Each time the tab is shown: runs trained, renamed or deleted meanwhile are in the list.
    shown_tab = gr.context.Context.block
    if isinstance(shown_tab, gr.Tab):
        shown_tab.select(refresh_choices, [scorer_id, picked_by_person, shown_choices],
                         [scorer_id, shown_choices, noted],
                         show_progress="hidden")
    gr.on([photo.change, photo_text.submit], score_photo, one_photo,
          [verdict, distribution, overlay, explanation, explain_note])
    threshold.release(score_photo, one_photo, [verdict, distribution, overlay, explanation, explain_note])
    explain_button.click(explain_photo, [scorer_id, photo, opacity], [overlay, explanation, explain_note])
    opacity.change(reblend, [explanation, opacity], overlay, show_progress="hidden")
    describe_button.click(describe, [scorer_id, threshold, photo, want_caption, send_image, language, base_url,
                                     model, api_key], description)
    start.click(lambda: stop_button(True), None, stop, show_progress="hidden").then(
        score_many, [scorer_id, threshold, uploads, folder], [progress, gallery, table, download, shown_rows],
        concurrency_limit=2).then(lambda: stop_button(False), None, stop, show_progress="hidden")
    stop.click(stop_batch, None, None, queue=False)
    write_xmp.click(write_sidecars, [shown_rows, stars_by, folder], xmp_note)
    explain_it = (explain_picked, [shown_rows, picked_index, picked_opacity],
                  [picked, picked_overlay, picked_explanation])
    def on_click(shown, event: gr.SelectData, request: gr.Request):  # the annotations are how Gradio passes them
        return select_photo(shown, event.index, request)

    selection = [picked_index, picked, your_score, picked_overlay]
    gallery.select(on_click, shown_rows, selection, show_progress="hidden").then(*explain_it)
    for button, delta in ((previous, -1), (next_, +1)):
        # "multiple", one at a time: arrow keys pressed faster than the server replies are queued in order,
        # each moving on from where the one before left the selection (by default a press while one
        # is pending was dropped, and → → under load showed photo 1)
        button.click(step(delta), [shown_rows, picked_index], [*selection, gallery], show_progress="hidden",
                     trigger_mode="multiple", concurrency_limit=1).then(*explain_it)
    your_score.submit(add_label, [shown_rows, picked_index, your_score], [label_note, last_label])
    undo_button.click(take_back, last_label, [label_note, last_label])
    picked_opacity.change(reblend, [picked_explanation, picked_opacity], picked_overlay, show_progress="hidden")
    _on_page_open(open_page, [scorer_id, scorer_info, threshold, shown_choices, noted])


def _on_page_open(fn, outputs) -> None:
    """Runs trained since the server started appear, and the default scorer is loaded, on each page open."""
    blocks = gr.context.Context.root_block
    if blocks is not None:
        blocks.load(fn, None, outputs)
