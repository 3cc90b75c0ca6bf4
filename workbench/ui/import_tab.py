"""Tab 1: bring photos in. Scan a folder or uploaded files, check and correct
the scores read from the file names, then copy everything into the training
set. Nothing touches ``data/`` before "Save to training set"."""
from __future__ import annotations

import html

import gradio as gr

from workbench.config import Settings
from workbench.dataset import ScoreError, ScoreStore
from workbench.dataset.session import ImportSession
from workbench.errors import WorkbenchError
from workbench.events import Progress, drain
from workbench.ui.widgets import (
    LabelledGallery,
    changes_text,
    histogram,
    histogram_axis,
    histogram_frame,
    received_files,
    table_rows,
)

TITLE = "Import"

INTRO = """Choose photos to add to your training set. Scores are read from the file names
(`85_beach.jpg` → 85, `7.5 sunset.png` → 7.5); files without one come in unlabelled.
Check the preview, fix any score (click an image and type, or edit the table), then press **Save to training set**."""

PATTERN_HELP = ("Optional Python regular expression searched in each file name (without extension); "
                "its group named `score` (or first group) is the score, e.g. `_s(?P<score>\\d+)$`. "
                "Leave empty for the default rule: a number at the start of the name.")


def summary_line(session: ImportSession | None) -> str:
    if session is None:
        return "Nothing scanned yet."
    if session.saved:  # what was really copied: a re-import may add nothing
        r = session.report
        twice = f", {r.same_in_source} the same picture as another file here (not copied twice)" if r.same_in_source else ""
        return (f"**Saved to the training set — {r.imported} new images ({r.labelled} labelled, "
                f"{r.unlabelled} unlabelled), {r.already} already there{twice}.** Edit them in *Training data* "
                f"from now on; preview another folder to import more.")
    same = [s for s in session.skipped if s.same_as]  # byte-identical files within this source
    skipped = [s for s in session.skipped if not s.same_as]
    twice = f", {len(same)} the same picture as another file here (imported once)" if same else ""
    line = f"**To import — {session.summary().line()}, {len(skipped)} skipped{twice}.**"
    if session.already:
        line += (f"\n\n{len(session.already)} of these pictures are already in the training set "
                 f"(same content); they will not be copied twice.")
    rated = sum(item.from_rating for item in session.preview.items)
    if session.sources:
        line += f"\n\nScores from: {session.sources} ({rated} from star ratings)."
    for title, files in (("The same picture twice", same), ("Skipped files", skipped)):
        if files:
            reasons = "\n".join(f"- `{s.file}`: {s.reason}" for s in files[:20])
            more = f"\n- … and {len(files) - 20} more" if len(files) > 20 else ""
            line += f"\n\n{title}:\n{reasons}{more}"
    return line


def report_text(report) -> str:
    """One line a person reads at a glance; the per-file reasons folded under it."""
    r = report.to_json()
    already = [item for item in r["skipped"] if "already in the training set" in item["reason"]]
    twice = sum("same_as" in item for item in r["skipped"])
    if r["imported"] == 0 and r["skipped"] and len(already) == len(r["skipped"]):
        text = f"**Nothing new to copy:** all {len(already)} are already in your training set."
    else:
        text = (f"**Saved.** {r['imported']} images copied into the training set "
                f"({r['labelled']} labelled"
                + (f", {r['from_ratings']} of them from star ratings" if r["from_ratings"] else "")
                + f", {r['unlabelled']} unlabelled)"
                + (f"; {len(r['skipped'])} skipped ({len(already)} already there"
                   + (f", {twice} the same picture as another file here" if twice else "") + ")."
                   if r["skipped"] else "."))
    if r["skipped"]:
        items = "".join(f"<li><code>{html.escape(item['file'])}</code>: {html.escape(item['reason'])}</li>"
                        for item in r["skipped"])
        text += f"\n\n<details><summary>Which files, and why</summary><ul>{items}</ul></details>"
    if r["renamed"]:
        text += "\n\nSaved under another name (the name was taken, or held characters a file name cannot): " + ", ".join(
            f"`{item['file']}` → `{item['saved_as']}`" for item in r["renamed"])
    return text


def close_session(session: ImportSession | None) -> None:
    """Gradio calls this when a browser session's state is dropped (about an hour after its tab closed)."""
    if session is not None:
        session.close()  # deletes the files extracted from uploaded zips


def show_progress(progress: gr.Progress, event) -> None:
    if isinstance(event, Progress):
        progress((event.done, event.total), desc=event.message, unit="images")


def build(settings: Settings) -> None:
    gr.Markdown(INTRO)
    # A new scan closes the session it replaces; the last one of a tab is closed when Gradio drops its state.
    session = gr.State(None, delete_callback=close_session)
    with gr.Tabs():
        with gr.Tab("Folder on this computer", id="import-source-folder"):
            with gr.Row(equal_height=True):
                folder = gr.Textbox(label="Folder path", placeholder="/home/me/Pictures/rated",
                                    elem_id="import-folder", scale=4, max_lines=1)
                scan_folder = gr.Button("Preview folder", variant="primary", elem_id="import-scan-folder",
                                        scale=1)
        with gr.Tab("Upload from this browser", id="import-source-upload"):
            uploads = gr.File(label=f"Images or a .zip (several at once, at most {settings.max_upload_mb:g} MB each)",
                              file_count="multiple", elem_id="import-upload", height=140)
            scan_upload = gr.Button("Preview uploaded files", variant="primary", elem_id="import-scan-upload")
    pattern = gr.Textbox(label="Custom file-name pattern (optional)", info=PATTERN_HELP,
                         placeholder=settings.filename_pattern or "default rule", elem_id="import-pattern",
                         value=settings.filename_pattern, max_lines=1)
    unlabelled_first = gr.Checkbox(value=True, label="Unlabelled first", elem_id="import-unlabelled-first")
    view = LabelledGallery.build("import", settings, gallery_label="Preview (not saved yet)")
    with gr.Row():
        save = gr.Button("Save to training set", variant="primary", elem_id="import-save", size="lg")
    report = gr.Markdown(elem_id="import-report")

    everything = [session, *view.page_outputs, view.summary, view.histogram, view.status]

    def render(current: ImportSession | None, page_no: int = 0, selected: int | None = None,
               status: str = "", keep: str | None = None) -> dict:
        """Draw ``page_no``; select the photo named ``keep`` if it is on it (a scored photo moves
        when the unlabelled come first), else the index ``selected``."""
        page = None if current is None else current.page(
            page_no, settings.gallery_page_size, settings.thumbnails_dir, settings.thumbnail_size,
            unlabelled_first=current.unlabelled_first)
        names = [item.filename for item in page.items] if page is not None else []
        selected = names.index(keep) if keep in names else selected
        bins = [] if current is None else current.summary().histogram
        shown = view.show(page, selected, "Saved to the training set" if current and current.saved
                          else "Preview (not saved yet)")
        return dict(zip(everything, (current, *shown, summary_line(current),
                                     histogram(bins, settings), status)))

    def say(status: str) -> dict:
        return {view.status: status}  # the rest of the screen stays as it is

    def scan(previous, source, pattern_text, first=True, progress=gr.Progress()):
        if not source:
            yield say("Choose a folder or upload files first.")
            return
        try:
            current = drain(ImportSession.scan_events(source, settings, pattern_text or ""),
                            lambda e: show_progress(progress, e))
        except (WorkbenchError, OSError) as exc:  # a bad pattern or folder, an unreadable zip
            yield say(f"⚠️ {exc}")
            return
        if previous is not None:
            previous.close()
        current.unlabelled_first = bool(first)  # a new preview keeps the order the box shows
        # the histogram's axis first, alone, then its bars as a bare frame: drawn on the first render
        bins = current.summary().histogram
        yield {view.histogram: histogram_axis(bins, settings)}
        yield {**render(current, 0, 0 if current.names else None, ""),  # the last save's notice goes
               view.histogram: histogram_frame(bins, settings), report: ""}

    def scan_uploads(previous, files, pattern_text, first, progress=gr.Progress()):
        yield from scan(previous, received_files(files, settings), pattern_text, first, progress)

    def save_score(current, page, selected, typed):
        name = view.selected_filename(page, selected)
        if current is None or name is None:
            return say("Select an image first.")
        try:
            score = current.set_score(name, typed)
        except ScoreError as exc:
            gr.Warning(str(exc), duration=6)
            return say(f"⚠️ {exc} Nothing was changed.")
        return render(current, page.page, selected, f"✓ {name}: score {score:g} (in the preview; Save to keep it)",
                      keep=name)

    def save_table(current, page, selected, value):
        if current is None:
            return {view.status: gr.skip()}
        try:
            changed = current.apply_table(table_rows(value))
        except ScoreError as exc:
            gr.Warning(str(exc), duration=6)
            return render(current, page.page, selected, f"⚠️ {exc}")
        if not changed:  # the table fires without an edit too: keep the last message
            return (*[gr.skip()] * len(everything),)
        return render(current, page.page, selected,
                      f"✓ {changes_text(changed)} (in the preview; Save to keep it)")

    def turn(delta: int):
        return lambda current, page: render(current, (page.page if page else 0) + delta, None)

    def save_all(current, progress=gr.Progress()):
        if current is None or not current.names:
            return "Nothing to save yet: preview a folder or uploaded files first, and let the preview finish."
        try:
            report_ = drain(current.save(ScoreStore.from_settings(settings)), lambda e: show_progress(progress, e))
        except (WorkbenchError, OSError) as exc:  # a bad score, the CLI writing too, a full disk
            return {report: f"⚠️ {exc} Nothing was copied."}
        return {report: report_text(report_), view.summary: summary_line(current),
                view.gallery: gr.Gallery(label="Saved to the training set")}

    # one progress bar, over the summary line (not one drawn over every panel)
    scan_folder.click(scan, [session, folder, pattern, unlabelled_first], [*everything, report], show_progress_on=[view.summary])
    folder.submit(scan, [session, folder, pattern, unlabelled_first], [*everything, report], show_progress_on=[view.summary])
    scan_upload.click(scan_uploads, [session, uploads, pattern, unlabelled_first], [*everything, report],
                      show_progress_on=[view.summary])
    def redraw(event) -> None:
        """Send the histogram once more after ``event``: Gradio 6.31's bar plot sometimes draws the value
        before the one it was sent."""
        event.then(lambda current: histogram(current.summary().histogram if current else [], settings), session,
                   view.histogram, show_progress="hidden")

    redraw(view.score.submit(save_score, [session, view.page, view.selected, view.score], everything,
                             show_progress="hidden"))
    redraw(view.table.input(save_table, [session, view.page, view.selected, view.table], everything,
                            show_progress="hidden"))
    def reorder(current, flag: bool):
        if current is None:
            return {view.status: gr.skip()}
        current.unlabelled_first = bool(flag)
        return render(current, 0, None)

    unlabelled_first.change(reorder, [session, unlabelled_first], everything, show_progress="hidden")
    view.previous_page.click(turn(-1), [session, view.page], everything, show_progress="hidden")
    view.next_page.click(turn(+1), [session, view.page], everything, show_progress="hidden")
    save.click(save_all, [session], [report, view.summary, view.gallery], show_progress_on=[report])
