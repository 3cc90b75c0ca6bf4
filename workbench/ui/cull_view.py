"""The Cull view inside Predict's "Many photos": groups as rows, the pick highlighted, flags as badges.

Keys (when no text field has the focus): ←/→ move between photos, P pick,
X reject, U unmark, 1-5 stars, 0 clears the stars. Clicking a photo selects it.
The browser sends each key through a hidden textbox and button (installed once
per page by :data:`KEYS_JS`); every decision lives in the engine's CullResult.
"""
from __future__ import annotations

import html
import logging
import time
from pathlib import Path

import gradio as gr

from workbench.config import Settings
from workbench.cull import (
    CullOptions,
    copy_photos,
    corrected_scores,
    cull,
    send_to_training,
    unavailable_flags,
    write_cull_xmp,
)
from workbench.dataset.ratings import StarMapping
from workbench.errors import WorkbenchError
from workbench.events import Finished, Progress, drain
from workbench.images import ImageError, thumbnail
from workbench.predict import cached_scorer
from workbench.ui.widgets import StopFlags, progress_html, received_files, stop_button

log = logging.getLogger(__name__)
STOP_FLAGS = StopFlags()
THUMB = 160
UPDATE_EVERY = 0.5  # s between progress updates
FLAG_LABELS = {"out_of_focus": "out of focus", "clipped_highlights": "clipped highlights",
               "crushed_shadows": "crushed shadows", "closed_eyes": "eyes closed?"}
SHOW = {"all photos": lambda p: True, "flagged only": lambda p: p.flagged, "picks only": lambda p: p.status == "pick"}

KEYS_JS = """
() => {
  if (window.__cullKeys) return;
  window.__cullKeys = true;
  // One message at a time through the hidden box: set it, let Gradio see the input, click, then
  // the next. (Two sends within the 30 ms used to click twice with the second value: a click on a
  // photo followed at once by → moved two photos.)
  const queue = [];
  let sending = false;
  const pump = () => {
    const box = document.querySelector('#cull-key textarea, #cull-key input');
    const go = document.querySelector('#cull-key-go');
    if (!queue.length || !box || !go) { sending = false; return; }
    sending = true;
    box.value = queue.shift();
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(() => { go.click(); pump(); }, 30);
  };
  const send = (value) => {
    queue.push(value + '|' + Date.now());
    if (!sending) pump();
  };
  const keys = ['p', 'x', 'u', 'arrowleft', 'arrowright', '0', '1', '2', '3', '4', '5'];
  document.addEventListener('keydown', (e) => {
    const view = document.querySelector('#cull-groups');
    if (!view || view.offsetParent === null || !view.querySelector('.cull-photo')) return;
    if (window.__keysOwner === 'predict') return;  /* the Best-first gallery above was clicked last */
    const t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
    if (e.ctrlKey || e.metaKey || e.altKey || !keys.includes(e.key.toLowerCase())) return;
    e.preventDefault();
    send('key:' + e.key.toLowerCase());
  });
  document.addEventListener('click', (e) => {
    const photo = e.target.closest && e.target.closest('#cull-groups .cull-photo');
    if (photo) send('select:' + photo.dataset.index);
  });
}
"""

STYLE = """<style>
#cull-groups .cull-group{display:flex;gap:8px;align-items:flex-start;padding:6px 0;border-bottom:1px solid #e5e7eb;
 overflow-x:auto}
#cull-groups .cull-head{min-width:90px;font-size:13px}
#cull-groups .cull-photo{width:170px;flex:none;border:3px solid transparent;border-radius:6px;padding:2px;
 cursor:pointer;font-size:12px}
#cull-groups .cull-photo img{width:160px;height:120px;object-fit:cover;border-radius:4px;display:block}
#cull-groups .cull-photo.pick{border-color:#2e9d4f;background:#eaf7ee}
#cull-groups .cull-photo.reject img{opacity:.45}
#cull-groups .cull-photo.selected{outline:3px solid #4f7cac;outline-offset:1px}
#cull-groups .badge{display:inline-block;background:#c0392b;color:#fff;border-radius:8px;padding:0 6px;margin:1px;
 font-size:11px}
#cull-groups .mark{font-weight:600}
</style>"""


def _thumb_url(path: str, settings: Settings) -> str:
    try:
        return "/gradio_api/file=" + html.escape(str(thumbnail(path, THUMB, settings.thumbnails_dir)))
    except (ImageError, OSError):
        return ""


def render(state: dict | None, show: str = "all photos") -> str:
    """The groups as HTML rows; each photo carries data-path, data-status and its index for the keys."""
    if not state:
        return ""
    result, cursor, thumbs = state["result"], state["cursor"], state["thumbs"]
    keep = SHOW.get(show, SHOW["all photos"])
    rows, index = [STYLE], 0
    for group in result.groups:
        cells = []
        for photo in group.photos:
            if keep(photo):
                badges = "".join(f'<span class="badge">{FLAG_LABELS[n]} {f["value"]:.3g}</span>'
                                 for n, f in photo.flags.items() if f["flagged"])
                mark = {"pick": "✔ PICK", "reject": "✘ reject", "none": ""}[photo.status]
                stars = "★" * photo.stars if photo.stars else ""
                cells.append(
                    f'<div class="cull-photo {photo.status}{" selected" if index == cursor else ""}" '
                    f'data-index="{index}" data-path="{html.escape(photo.path)}" data-status="{photo.status}">'
                    f'<img src="{thumbs.get(photo.path, "")}" alt="">'
                    f'<div><span class="mark">{mark}</span> {photo.score:.2f} {stars}</div>'
                    f'<div title="{html.escape(photo.path)}">{html.escape(Path(photo.path).name)}</div>{badges}</div>')
            index += 1
        if cells:
            pick = group.pick
            rows.append(f'<div class="cull-group" data-group="{group.id}"><div class="cull-head">Group {group.id}'
                        f'<br>{len(group.photos)} photo{"s" if len(group.photos) > 1 else ""}'
                        f'{"" if pick else "<br>no pick"}</div>{"".join(cells)}</div>')
    return "".join(rows)


def summary(state: dict | None) -> str:
    if not state:
        return ""
    result = state["result"]
    photos = result.photos
    selected = photos[state["cursor"]] if photos else None
    where = f" · selected: **{html.escape(Path(selected.path).name)}** ({selected.status})" if selected else ""
    return (f"{len(photos)} photos in {len(result.groups)} groups: **{len(result.picks)} picks**, "
            f"{len(result.rejected)} rejected{where}. Keys: ←/→ move, P pick, X reject, U unmark, 1-5 stars, "
            f"0 no stars." + eyes_text(photos)
            + "".join(f" {FLAG_LABELS[name].capitalize()}: {why}." for name, why in unavailable_flags(result.options).items()))


def errors_text(errors: dict[str, str], most: int = 5) -> str:
    """The files that could not be culled, each with its reason (the first ``most``)."""
    if not errors:
        return ""
    shown = "; ".join(f"{Path(path).name or path}: {why}" for path, why in list(errors.items())[:most])
    more = f"; and {len(errors) - most} more (all in the CSV)" if len(errors) > most else ""
    return f" Not culled: {shown}{more}."


def eyes_text(photos) -> str:
    """What the closed-eye check found, so that "nothing flagged" can be told from "no face seen"."""
    looked = [p.flags["closed_eyes"] for p in photos
              if "closed_eyes" in p.flags and p.flags["closed_eyes"].get("faces") is not None]
    if not looked:
        return ""
    faces = sum(f["faces"] for f in looked)
    with_faces = sum(1 for f in looked if f["faces"])
    flagged = sum(1 for f in looked if f["flagged"])
    return (f" Closed eyes: {faces} face(s) found in {with_faces} of {len(looked)} photos, "
            f"{flagged} photo(s) flagged.")


def apply_key(state: dict | None, value: str) -> dict | None:
    """One key or click from the browser ("key:p", "select:3", with a "|time" suffix) applied to the cull."""
    if not state or not value:
        return state
    kind, _, rest = value.partition(":")
    command = rest.split("|")[0]
    photos = state["result"].photos
    if not photos:
        return state
    cursor = min(state["cursor"], len(photos) - 1)
    if kind == "select" and command.isdigit():
        cursor = min(int(command), len(photos) - 1)
    elif command in ("arrowright", "arrowleft"):
        cursor = max(0, min(len(photos) - 1, cursor + (1 if command == "arrowright" else -1)))
    elif command in ("p", "x", "u"):
        state["result"].set_status(photos[cursor].path, {"p": "pick", "x": "reject", "u": "none"}[command])
    elif command.isdigit():
        state["result"].set_stars(photos[cursor].path, int(command) or None)
    state["cursor"] = cursor
    return state


def build(settings: Settings, scorer_id: gr.components.Component, uploads: gr.components.Component,
          folder: gr.components.Component) -> None:
    """The Cull accordion; culls the same photos (uploads and typed folder) with the same scorer."""
    gr.set_static_paths([settings.thumbnails_dir])  # thumbnails are immutable: serve, never copy
    defaults = CullOptions()
    with gr.Accordion("Cull: group bursts and near-duplicates, flag failures, pick the best of each group",
                      open=True, elem_id="cull"):
        with gr.Row():
            similarity = gr.Slider(0.5, 1, value=defaults.similarity, step=0.01, elem_id="cull-similarity",
                                   label="Near-duplicate from (cosine similarity, any time)")
            burst_seconds = gr.Slider(0, 10, value=defaults.burst_seconds, step=0.1, elem_id="cull-burst-seconds",
                                      label="Burst: at most this many seconds between frames")
            burst_similarity = gr.Slider(0, 1, value=defaults.burst_similarity, step=0.01,
                                         label="Burst frames at least this alike", elem_id="cull-burst-similarity")
        with gr.Row():
            blur = gr.Slider(0, 0.05, value=defaults.blur_threshold, step=0.001, elem_id="cull-blur",
                             label="Out of focus below (Laplacian sharpness)")
            highlights = gr.Slider(0, 1, value=defaults.highlight_threshold, step=0.01, elem_id="cull-highlights",
                                   label="Clipped highlights from (share of pixels)")
            shadows = gr.Slider(0, 1, value=defaults.shadow_threshold, step=0.01, elem_id="cull-shadows",
                                label="Crushed shadows from (share of pixels)")
        with gr.Row():
            eyes = gr.Checkbox(value=defaults.closed_eyes, elem_id="cull-eyes",
                               label="Look for closed eyes (a heuristic that catches few blinks: frontal faces only, "
                                     "a squint may read as closed; up to ~0.7 s more a 12-MP photo)")
            eyes_t = gr.Slider(0, 1, value=defaults.eyes_threshold, step=0.05, elem_id="cull-eyes-threshold",
                               label="Eyes closed? from (share of the faces found)")
        with gr.Row():
            start = gr.Button("Cull", variant="primary", elem_id="cull-start")
            stop = gr.Button("Stop", variant="secondary", interactive=False, elem_id="cull-stop")  # on while culling
            show = gr.Radio(list(SHOW), value="all photos", label="Show", elem_id="cull-show")
        progress = gr.HTML(elem_id="cull-progress")
        info = gr.Markdown(elem_id="cull-summary")
        groups = gr.HTML(elem_id="cull-groups")
        with gr.Row():
            pick_b = gr.Button("Pick (P)", size="sm", elem_id="cull-pick")
            reject_b = gr.Button("Reject (X)", size="sm", elem_id="cull-reject")
            unmark_b = gr.Button("Unmark (U)", size="sm", elem_id="cull-unmark")
        key = gr.Textbox(visible="hidden", elem_id="cull-key")
        key_go = gr.Button(visible="hidden", elem_id="cull-key-go")
        with gr.Row(equal_height=True):
            target = gr.Textbox(label="Folder to copy into", placeholder="/home/me/Pictures/keepers",
                                elem_id="cull-target", scale=3)
            which = gr.Radio(["picks", "rejects"], value="picks", label="Which", elem_id="cull-which", scale=1)
            move = gr.Checkbox(label="Move instead of copy", value=False, elem_id="cull-move", scale=1)
            copy_b = gr.Button("Copy", elem_id="cull-copy", scale=1)
        with gr.Row():
            xmp_b = gr.Button("Write XMP sidecars (stars + pick/reject; folder photos)", elem_id="cull-xmp")
            train_b = gr.Button("Send rated and rejected photos to the training set", elem_id="cull-train")
        note = gr.Markdown(elem_id="cull-note")
    state = gr.State(None)

    def run(chosen, files, typed, sim, gap, burst_sim, blur_t, high_t, shadow_t, eyes_on, eyes_share, shown,
            request: gr.Request):
        inputs = received_files(files, settings) + ([typed.strip()] if typed and typed.strip() else [])
        if not inputs:
            yield {progress: progress_html(0, "Add photos or type a folder first.")}
            return
        session = request.session_hash or ""
        flag = STOP_FLAGS.start(session, "cull")
        try:
            options = CullOptions(similarity=sim, burst_seconds=gap, burst_similarity=burst_sim,
                                  blur_threshold=blur_t, highlight_threshold=high_t, shadow_threshold=shadow_t,
                                  closed_eyes=bool(eyes_on), eyes_threshold=eyes_share)
            last, result = 0.0, None
            for event in cull(inputs, cached_scorer(chosen, settings), settings, options=options, stop=flag):
                if isinstance(event, Progress) and time.monotonic() - last > UPDATE_EVERY:
                    last = time.monotonic()
                    yield {progress: progress_html(event.fraction, f"{event.done} of {event.total} · {event.message}")}
                elif isinstance(event, Finished):
                    result = event.result
            word = "Stopped" if result.stopped else "Done"
            if not result.photos:  # nothing to show: keep the previous cull on screen, say why
                yield {progress: progress_html(1.0, f"{word}: no photo culled.{errors_text(result.errors)}",
                                               failed=bool(result.errors))}
                return
            fresh = {"result": result, "cursor": 0,
                     "thumbs": {p.path: _thumb_url(p.path, settings) for p in result.photos}}
            yield {progress: progress_html(1.0, f"{word}: {len(result.photos)} photos culled, "
                                                f"{len(result.errors)} could not be.{errors_text(result.errors)}"),
                   state: fresh, groups: render(fresh, shown), info: summary(fresh), note: ""}
        except WorkbenchError as exc:
            yield {progress: progress_html(1, f"Could not cull: {exc}", failed=True)}
        except Exception as exc:  # a bug: say so, keep what is shown, details in the server log
            log.exception("culling %d input(s) failed", len(inputs))
            yield {progress: progress_html(1, f"Culling failed: {exc}", failed=True)}
        finally:
            STOP_FLAGS.finish(session, "cull", flag)

    def on_key(current, value, shown):
        current = apply_key(current, value)
        return current, render(current, shown), summary(current)

    def copy(current, folder_text, chosen_kind, moving):
        if not current:
            return "Cull first."
        if not folder_text or not folder_text.strip():
            return "Type the folder to copy into."
        result = current["result"]
        paths = result.picks if chosen_kind == "picks" else result.rejected
        report = drain(copy_photos(paths, folder_text.strip(), move=moving))
        if moving:  # the cull now points at the photos' new places
            for photo in result.photos:
                photo.path = report.copied.get(photo.path, photo.path)
        failed = "".join(f"\n- ⚠ {html.escape(p)}: {html.escape(e)}" for p, e in report.failed.items())
        return f"{'Moved' if moving else 'Copied'} {len(report.copied)} {chosen_kind} to `{folder_text.strip()}`.{failed}"

    def xmp(current):
        if not current:
            return "Cull first."
        done = write_cull_xmp(current["result"], new_sidecar=settings.new_sidecar)
        failed = "".join(f"\n- ⚠ {html.escape(f['path'])}: {html.escape(f['error'])}" for f in done["failed"])
        return f"Wrote {len(done['written'])} XMP sidecars (stars, pick/reject).{failed}"

    def train(current):
        if not current:
            return "Cull first."
        items = corrected_scores(current["result"], StarMapping.from_settings(settings))
        if not items:
            return "Rate photos with 1-5 (stars) or reject them first: those go to the training set."
        report = drain(send_to_training(items, settings))
        return (f"Sent {len(items)} rated or rejected photos to the training set: {report.imported} added "
                f"({len(items) - report.imported} were there already).")

    def guarded(fn):
        def call(*args):
            try:
                return fn(*args)
            except WorkbenchError as exc:
                return f"⚠ {html.escape(str(exc))}"
        return call

    start.click(lambda: stop_button(True), None, stop, show_progress="hidden").then(
        run, [scorer_id, uploads, folder, similarity, burst_seconds, burst_similarity, blur, highlights, shadows, eyes,
              eyes_t, show],
        [progress, state, groups, info, note], concurrency_limit=2).then(
        lambda: stop_button(False), None, stop, show_progress="hidden")
    def stop_cull(request: gr.Request) -> None:
        STOP_FLAGS.stop(request.session_hash or "", "cull")

    stop.click(stop_cull, None, None, queue=False)
    # "multiple": a key pressed while the previous one is still on its way to the server is queued,
    # not dropped (Gradio's default "once" ignored an → sent right after a click on a photo)
    key_go.click(on_key, [state, key, show], [state, groups, info], show_progress="hidden", trigger_mode="multiple")
    for button, letter in ((pick_b, "p"), (reject_b, "x"), (unmark_b, "u")):
        button.click(lambda current, shown, k=letter: on_key(current, f"key:{k}", shown), [state, show],
                     [state, groups, info], show_progress="hidden")
    show.change(lambda current, shown: render(current, shown), [state, show], groups, show_progress="hidden")
    copy_b.click(guarded(copy), [state, target, which, move], note)
    xmp_b.click(guarded(xmp), state, note)
    train_b.click(guarded(train), state, note)
    blocks = gr.context.Context.root_block
    if blocks is not None:
        blocks.load(None, None, None, js=KEYS_JS)


