"""Tab 2: the training set as it is on disk. Every edit is written to
``data/scores.csv`` at once; deleting moves an image to ``data/.trash/`` and
can be undone. The disk is the source of truth: Refresh shows edits made in
another browser tab or from the command line."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from workbench.config import Settings
from workbench.dataset import (
    GalleryQuery,
    ScoreStore,
    format_score,
    gallery_page,
    summarize,
)
from workbench.dataset.ratings import write_star_ratings
from workbench.dataset.session import table_changes
from workbench.errors import BadInput, NotFound, WorkbenchError
from workbench.images import ImageError
from workbench.labelling.pairwise import label_sources
from workbench.ui.widgets import LabelledGallery, changes_text, histogram, received_file, table_rows

TITLE = "Training data"

# label shown in the dropdown -> GalleryQuery.sort
SORT_ORDERS = {"File name": "name", "Score, low to high": "score", "Score, high to low": "score_desc"}

def summary_line(summary) -> str:
    if not summary.total:
        return "**The training set is empty.** Import photos in the Import tab, or add one below."
    problems = "".join(f"\n- ⚠️ {problem}" for problem in summary.problems)
    return f"**Training set — {summary.line()}.**{problems}"


def _with_note(confirmation: str, note: str) -> str:
    return f"{confirmation} ⚠️ {note}" if note else confirmation


def build(settings: Settings) -> None:
    store = ScoreStore.from_settings(settings)
    gr.Markdown(f"Your labelled photos in `{settings.data_dir}`. Every change is saved at once.")
    with gr.Row(equal_height=True):
        sort = gr.Dropdown(list(SORT_ORDERS), value="File name", label="Sort by", elem_id="data-sort", scale=2)
        unlabelled_first = gr.Checkbox(value=True, label="Unlabelled first", elem_id="data-unlabelled-first")
        only_unlabelled = gr.Checkbox(value=False, label="Only unlabelled", elem_id="data-only-unlabelled")
        # The full range means "no score filter" (unlabelled images stay visible).
        min_score = gr.Number(label="Min score", value=settings.score_min, elem_id="data-min-score")
        max_score = gr.Number(label="Max score", value=settings.score_max, elem_id="data-max-score")
        refresh = gr.Button("↻ Refresh", elem_id="data-refresh", scale=1)
    view = LabelledGallery.build("data", settings, gallery_label="Training set", can_delete=True,
                                 label_sources=lambda scores: label_sources(store, scores))
    with view.extra_actions:
        delete = gr.Button("Delete (to trash)", variant="stop", elem_id="data-delete")
        undo = gr.Button("↶ Undo", elem_id="data-undo")
        write_xmp = gr.Button("Write labels to XMP sidecars", elem_id="data-write-xmp")
    with gr.Accordion("Add an image", open=False, elem_id="data-add"):
        with gr.Row(equal_height=False):
            upload = gr.File(label="Upload an image", file_types=["image"], elem_id="data-add-file",
                             height=120, scale=3)
            existing = gr.Textbox(label="…or the name of a file already in the data folder",
                                  elem_id="data-add-name", scale=3, max_lines=1)
            add_score = gr.Textbox(label="Score (optional for an upload)", elem_id="data-add-score", scale=1,
                                   max_lines=1)
            add = gr.Button("Add", variant="primary", elem_id="data-add-button", scale=1)

    query_inputs = [sort, unlabelled_first, only_unlabelled, min_score, max_score]
    everything = [*view.page_outputs, view.summary, view.histogram, view.status]

    def render(query, page_no=0, keep: str | None = None, index: int | None = None, status: str = ""):
        """Read the disk again and draw ``page_no``; select ``keep`` if still there, else ``index``."""
        sort_label, first, only, lo, hi = query
        lo = None if lo is None or lo <= settings.score_min else lo
        hi = None if hi is None or hi >= settings.score_max else hi
        page = gallery_page(store, GalleryQuery(
            page=page_no, page_size=settings.gallery_page_size, sort=SORT_ORDERS.get(sort_label, "name"),
            unlabelled_first=bool(first), only_unlabelled=bool(only), min_score=lo, max_score=hi,
        ), settings.thumbnails_dir, settings.thumbnail_size)
        names = [item.filename for item in page.items]
        selected = names.index(keep) if keep in names else index
        summary = summarize(store)
        return dict(zip(everything, (*view.show(page, selected), summary_line(summary),
                                     histogram(summary.histogram, settings), status)))

    def refresh_view(*query):
        return render(query)

    def reopen(page, selected, *query):
        """Opening the tab re-reads the disk but keeps the page and the photo in view; a score being
        typed for that photo survives (the re-read can land after the first keystrokes)."""
        name = view.selected_filename(page, selected)
        shown = render(query, page.page if page is not None else 0, name, selected)
        return view.keep_typed_score(shown, page, selected)

    def edit(action, needs_selection: bool = True):
        """Wrap ``action(page, name, *args) -> (confirmation | None, keep)`` as a callback that
        writes through the store, then redraws from disk; a refused edit shows why."""
        def callback(page, selected, *args):
            query, extra = args[:len(query_inputs)], args[len(query_inputs):]
            name = view.selected_filename(page, selected)
            if needs_selection and name is None:
                return {view.status: "Select an image first."}
            page_no = page.page if page is not None else 0
            try:
                confirmation, keep = action(page, name, *extra)
            except (WorkbenchError, OSError) as exc:  # a bad score or name, the CLI writing too, a full disk
                gr.Warning(str(exc), duration=6)
                return render(query, page_no, name, selected, f"⚠️ {exc} Nothing was changed.")
            if confirmation is None:
                return {view.status: gr.skip()}  # nothing to show
            # no toast: the status line under the photo says it, and toasts piled up over the photo
            return render(query, page_no, keep, selected, f"✓ {confirmation}")
        return callback

    # Each save passes the scores this tab showed, so one changed meanwhile elsewhere (another tab, the CLI)
    # is told in the status line; the person's new score is saved all the same.
    def shown_scores(page) -> dict:
        return {item.filename: item.score for item in page.items} if page is not None else {}

    def save_score(page, name, typed):
        shown = shown_scores(page)
        write = store.write_scores({name: typed}, {name: shown[name]} if name in shown else None)
        return _with_note(f"Saved score {format_score(write.saved[name])} for {name}.", write.note()), name

    def save_table(page, name, value):
        shown = shown_scores(page)
        changes = table_changes(table_rows(value), shown)
        if not changes:
            return None, name
        write = store.write_scores(changes, shown)
        return _with_note(f"Saved {changes_text(write.saved)}.", write.note()), name

    def delete_entry(page, name):
        store.delete(name)
        return f"Moved {name} to the trash. “Undo” (or Z) brings it back.", None

    def undo_last(page, name):
        undone = store.undo()  # the latest score edit or deletion
        if undone is None:
            raise NotFound("There is nothing to undo.")
        kind, names = undone
        if kind == "delete":
            return f"Restored {names[0]}.", names[0]
        return f"Took back the score of {', '.join(names)}.", names[0] if len(names) == 1 else name

    def add_entry(page, name, file, typed_name, typed_score):
        if file:
            file = received_file(file, settings)
            result = store.add_image(file, Path(file).name, score=typed_score or None)
            if result.error:  # unreadable or not copied: nothing was written
                raise ImageError(f"{Path(file).name}: {result.error}")
            if not result.copied:
                return f"{Path(file).name} is already in the training set as {result.duplicate_of}.", None
            return f"Added {result.filename}.", result.filename
        typed_name = (typed_name or "").strip()
        if not typed_name:
            raise BadInput("Upload an image or type the name of a file in the data folder.")
        return save_score(page, typed_name, typed_score)

    def write_labels(page, name):  # stars by fixed fifths: the inverse of how imported stars become scores
        done = write_star_ratings(store.labelled(), "thresholds", store.score_min, store.score_max,
                                  new_sidecar=settings.new_sidecar)
        failed = f" {len(done.failed)} could not be written: {done.failed[0][1]}" if done.failed else ""
        return f"Wrote stars for {len(done.stars)} labelled photos into XMP sidecars next to them.{failed}", name

    def turn(delta):
        return lambda page, *query: render(query, (page.page if page else 0) + delta)

    def redraw(event) -> None:
        """Send the histogram once more after ``event``: Gradio 6.31's bar plot sometimes draws the value
        before the one it was sent (and ignores data that lands while its tab is hidden)."""
        event.then(lambda: histogram(summarize(store).histogram, settings), None, view.histogram,
                   show_progress="hidden")

    default_query = [sort.value, unlabelled_first.value, only_unlabelled.value, min_score.value, max_score.value]
    gr.on(None, lambda: render(default_query), None, everything)  # on page load
    # Build runs inside the app's gr.Tab: opening the tab re-reads the disk, so an
    # import saved in the Import tab (or by the CLI) shows up without a click.
    if isinstance(tab := gr.context.Context.block, gr.Tab):
        # The bar plot ignores data that lands while its tab is still hidden: send it again once shown.
        redraw(tab.select(reopen, [view.page, view.selected, *query_inputs], everything, show_progress="hidden"))
    gr.on([refresh.click, sort.change, unlabelled_first.change, only_unlabelled.change,
           min_score.submit, max_score.submit], refresh_view, query_inputs, everything)
    state = [view.page, view.selected, *query_inputs]
    redraw(view.score.submit(edit(save_score), [*state, view.score], everything, show_progress="hidden"))
    redraw(view.table.input(edit(save_table, needs_selection=False), [*state, view.table], everything,
                            show_progress="hidden"))
    redraw(delete.click(edit(delete_entry), state, everything, show_progress="hidden"))
    redraw(undo.click(edit(undo_last, needs_selection=False), state, everything, show_progress="hidden"))
    write_xmp.click(edit(write_labels, needs_selection=False), state, everything, show_progress="hidden")
    # empty the form once the photo was added
    add.click(edit(add_entry, needs_selection=False), [*state, upload, existing, add_score], everything).then(
        lambda status: {upload: None, existing: "", add_score: ""} if status.startswith("✓") else {upload: gr.skip()},
        view.status, [upload, existing, add_score], show_progress="hidden")
    view.previous_page.click(turn(-1), [view.page, *query_inputs], everything, show_progress="hidden")
    view.next_page.click(turn(+1), [view.page, *query_inputs], everything, show_progress="hidden")
