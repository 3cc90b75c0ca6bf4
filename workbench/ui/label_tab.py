"""The Label tab: rate at the speed of a keyboard, or compare two photos.

One large photo with the next ones preloaded in the browser, so a key press
shows the next photo without a round trip; the key's label is sent at the
same moment and saved at once by the engine (:class:`LabelDesk`).

Rating: 1–5 stars (mapped onto the score range like imported ratings), 0
clears, ←/→ move, Z undoes the last change, Enter accepts the chosen run's
suggestion (the best run on the leaderboard if its held-out SRCC is above 0, unless the person chooses another, or none).
Pairs: ←/→ picks the better photo, = is a tie, Z undoes.
The page is one ``gr.HTML`` whose script calls the engine through Gradio
server functions (each called with one object of named arguments); every
function here is a line or two over the engine.
"""
from __future__ import annotations

import gradio as gr

from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.labelling.desk import UNSEEN, LabelDesk

TITLE = "Label"

HTML = """
<div class="wb-label" tabindex="-1">
  <div class="wb-bar">
    <button class="wb-mode" data-mode="rate">Rate (1–5)</button>
    <button class="wb-mode" data-mode="pairs">Compare pairs</button>
    <label>Suggestions from <select class="wb-run"><option value="">no run</option></select></label>
    <span class="wb-run-warning" role="note"></span>
    <button class="wb-suggest">Order: most useful first</button>
    <button class="wb-apply">Use comparisons as labels</button>
    <label class="wb-names-opt" hidden><input type="checkbox" class="wb-names"> show names</label>
    <span class="wb-status" role="status"></span>
  </div>
  <div class="wb-rate">
    <div class="wb-caption"></div>
    <img class="wb-photo" alt="">
  </div>
  <div class="wb-pairs" hidden>
    <div class="wb-side"><img class="wb-left" alt=""><div class="wb-left-name"></div></div>
    <div class="wb-side"><img class="wb-right" alt=""><div class="wb-right-name"></div></div>
  </div>
  <div class="wb-help"></div>
</div>
"""

CSS = """
.wb-label { outline: none; }
.wb-bar { display: flex; gap: .6em; align-items: center; flex-wrap: wrap; margin-bottom: .5em; }
.wb-bar button.active { font-weight: bold; text-decoration: underline; }
.wb-photo { max-width: 100%; max-height: 70vh; display: block; margin: 0 auto; }
.wb-pairs { display: flex; gap: 1em; }
.wb-side { flex: 1; text-align: center; }
.wb-side img { max-width: 100%; max-height: 65vh; }
.wb-run-warning { color: #b45309; font-weight: bold; }
.wb-caption, .wb-help { text-align: center; margin: .3em; }
"""

# Runs in the browser. `server.*` are the Python functions below; images come from Gradio's file route
# (the data folder is an allowed path). Keys are taken only while this tab is visible and no text field
# has the focus, so other tabs keep their own keys.
JS = r"""
const root = element.querySelector('.wb-label');
const $ = (sel) => element.querySelector(sel);
const url = (name) => 'gradio_api/file=' + state.dataDir + '/' + encodeURIComponent(name);
const cache = new Map();
function preload(name) {
  if (!name || cache.has(name)) return;
  const img = new Image(); img.src = url(name); cache.set(name, img);
  if (cache.size > 64) cache.delete(cache.keys().next().value);
}
// Every server function answers {ok: result} or {error: message}; call() turns that into a promise.
async function call(fn, args) {
  const answer = args === undefined ? await server[fn]() : await server[fn](args);
  if (!answer || typeof answer !== 'object' || !('ok' in answer || 'error' in answer))
    throw new Error('the server did not answer (see its log)');
  if ('error' in answer) throw new Error(answer.error);
  return answer.ok;
}
const state = {mode: 'rate', items: [], index: 0, pairs: [], suggestions: {}, runWarnings: {}, dataDir: '', starScores: [],
               range: [0, 100]};
window.__wbLabel = {latency: [], saveMs: [], saves: 0, state};
function status(text) { $('.wb-status').textContent = text; }
function shown(img, name, t0) {
  img.src = url(name);
  if (t0 !== undefined) {
    img.decode().catch(() => {}).then(() => requestAnimationFrame(() =>
      window.__wbLabel.latency.push(performance.now() - t0)));
  }
}
function fmt(v) { return v === null || v === undefined ? 'unlabelled' : (Math.round(v * 100) / 100).toString(); }
function drawRate(t0) {
  const item = state.items[state.index];
  if (!item) { $('.wb-caption').textContent = 'No photos in the training set yet: import some first.'; return; }
  shown($('.wb-photo'), item.filename, t0);
  const sug = state.suggestions[item.filename];
  const origin = item.from_comparisons ? ' (from comparisons)' : '';
  $('.wb-caption').textContent = `${state.index + 1} / ${state.items.length} · ${item.filename} · score: ${fmt(item.score)}${origin}`
    + (sug !== undefined ? ` · suggestion ${fmt(sug)} (Enter accepts)` : '');
  for (let k = 1; k <= 3; k++) preload((state.items[state.index + k] || {}).filename);
  preload((state.items[state.index - 1] || {}).filename);
  askSuggestions();
}
async function askSuggestions() {
  const run = $('.wb-run').value;
  if (!run) return;
  const want = state.items.slice(state.index, state.index + 8).map(i => i.filename)
    .filter(n => state.suggestions[n] === undefined);
  if (!want.length) return;
  want.forEach(n => state.suggestions[n] = null);
  try {
    const got = await call('label_predictions', {run_id: run, filenames: want});
    Object.assign(state.suggestions, got);
    if (want.includes((state.items[state.index] || {}).filename)) drawRate();
  } catch (e) { status('Suggestions failed: ' + e); }
}
function drawPairs(t0) {
  const pair = state.pairs[0];
  if (!pair) { $('.wb-left-name').textContent = 'Fewer than two photos: nothing to compare.'; return; }
  shown($('.wb-left'), pair[0], t0); shown($('.wb-right'), pair[1]);
  // names hidden by default: score-prefixed file names would give the stored score away in a blind comparison
  const [l, r] = $('.wb-names').checked ? pair : ['left', 'right'];
  $('.wb-left-name').textContent = '← ' + l; $('.wb-right-name').textContent = r + ' →';
  state.pairs.slice(1).forEach(p => { preload(p[0]); preload(p[1]); });
}
function setMode(mode) {
  state.mode = mode;
  element.querySelectorAll('.wb-mode').forEach(b => b.classList.toggle('active', b.dataset.mode === mode));
  $('.wb-rate').hidden = mode !== 'rate'; $('.wb-pairs').hidden = mode !== 'pairs'; $('.wb-names-opt').hidden = mode !== 'pairs';
  $('.wb-help').textContent = mode === 'rate'
    ? 'Keys: 1–5 stars (saved at once, then the next photo) · 0 clears · ← → move · Z undoes · Enter accepts the suggestion'
    : 'Keys: ← the left one is better · → the right one is better · = tie · Z undoes the last comparison';
  if (mode === 'pairs' && !state.pairs.length) loadPairs(); else (mode === 'rate' ? drawRate() : drawPairs());
}
async function loadPairs() { state.pairs = await call('label_pairs'); drawPairs(); }
let chain = Promise.resolve();  // saves reach the server one after the other, in key order
function save(call, what, said = 'saved: ' + what) {  // said: the status once the server has it
  const done = chain.then(async () => {
    const t = performance.now();
    try {
      const r = await call(); window.__wbLabel.saves++; window.__wbLabel.saveMs.push(performance.now() - t);
      status(r && r.note ? r.note : said); return r;  // a score changed elsewhere meanwhile is told
    }
    catch (e) { status('NOT saved: ' + (e.message || e)); throw e; }
  });
  chain = done.catch(() => {});
  return done;
}
function move(step, t0) {
  state.index = Math.max(0, Math.min(state.items.length - 1, state.index + step)); drawRate(t0);
}
function rateKey(ev, t0) {
  const item = state.items[state.index];
  if (!item) return false;
  const name = item.filename;
  if ('012345'.includes(ev.key) || ev.key === 'Enter') item.from_comparisons = false;  // the person's own now
  if (ev.key >= '1' && ev.key <= '5') {
    const stars = Number(ev.key), seen = item.score; item.score = state.starScores[stars - 1];
    save(() => call('label_stars', {filename: name, stars, seen}), `${name} ${'★'.repeat(stars)}`).then(r => { item.score = r.score; });
    move(1, t0);
  } else if (ev.key === '0') {
    item.score = null; save(() => call('label_clear', {filename: name}), name, `cleared the score of ${name}`); move(1, t0);
  } else if (ev.key === 'Enter') {
    const sug = state.suggestions[name];
    if (sug === undefined || sug === null) { status('No suggestion for this photo: choose a run above.'); return true; }
    const seen = item.score; item.score = sug;
    save(() => call('label_accept', {filename: name, suggestion: sug, seen}), `${name} ${fmt(sug)} (suggestion)`)
      .then(r => { item.score = r.score; });
    move(1, t0);
  } else if (ev.key === 'ArrowRight') move(1, t0);
  else if (ev.key === 'ArrowLeft') move(-1, t0);
  else if (ev.key === 'z' || ev.key === 'Z') {
    save(() => call('label_undo'), 'undo').then(r => {
      if (!r) { status('Nothing to undo.'); return; }
      const at = state.items.findIndex(i => i.filename === r.filename);
      if (at >= 0) { state.items[at].score = r.score; state.index = at; drawRate(); }
      status(`undone: ${r.filename} is ${fmt(r.score)} again`);
    });
  } else return false;
  return true;
}
function pairKey(ev, t0) {
  const outcome = {ArrowLeft: 'left', ArrowRight: 'right', '=': 'tie'}[ev.key];
  const pair = state.pairs[0];
  if (outcome && pair) {
    state.pairs.shift();
    if (state.pairs.length) drawPairs(t0);
    const what = $('.wb-names').checked ? `${pair[0]} vs ${pair[1]}: ${outcome}` : `comparison (${outcome})`;
    save(() => call('label_compare', {left: pair[0], right: pair[1], outcome}), what)
      .then(next => {  // the pair on screen stays; the refitted choice follows it
        const now = state.pairs[0];
        const overlaps = (p) => now && (p.includes(now[0]) || p.includes(now[1]));
        state.pairs = now ? [now, ...next.filter(p => !overlaps(p))] : next;
        if (!now) drawPairs();
      });
    return true;
  }
  if ((ev.key === 'z' || ev.key === 'Z')) {
    save(() => call('label_undo_comparison'), 'undo').then(r => {
      const pairName = r && $('.wb-names').checked ? `${r.left} vs ${r.right} ` : 'the last comparison ';
      status(r ? `undone: ${pairName}(${r.outcome})` : 'Nothing to undo.');
      if (r) { state.pairs.unshift([r.left, r.right]); drawPairs(); }
    });
    return true;
  }
  return false;
}
document.addEventListener('keydown', (ev) => {
  if (!root.offsetParent || ev.ctrlKey || ev.metaKey || ev.altKey) return;  // tab hidden, or a shortcut
  const tag = (document.activeElement || {}).tagName;
  if (['INPUT', 'TEXTAREA', 'SELECT'].includes(tag) || (document.activeElement || {}).isContentEditable) return;
  const t0 = performance.now();
  if ((state.mode === 'rate' ? rateKey : pairKey)(ev, t0)) ev.preventDefault();
});
element.querySelectorAll('.wb-mode').forEach(b => b.addEventListener('click', () => { setMode(b.dataset.mode); root.focus(); }));
$('.wb-names').addEventListener('change', () => { drawPairs(); root.focus(); });
const warnRun = () => { $('.wb-run-warning').textContent = state.runWarnings[$('.wb-run').value] || ''; };
$('.wb-run').addEventListener('change', () => { state.suggestions = {}; warnRun(); drawRate(); root.focus(); });
$('.wb-apply').addEventListener('click', async () => {
  try {
    status(await call('label_apply_comparisons'));
    const fresh = await call('label_start');
    const byName = new Map(fresh.items.map(i => [i.filename, i]));
    state.items.forEach(i => Object.assign(i, byName.get(i.filename) || {}));
    drawRate();
  } catch (e) { status('Not saved: ' + (e.message || e)); }
  root.focus();
});
$('.wb-suggest').addEventListener('click', async () => {
  status('ranking the unlabelled photos (features are computed once)…');
  try {
    const order = await call('label_suggested_order');
    const rank = new Map(order.map((n, i) => [n, i]));
    state.items.sort((a, b) => (rank.has(a.filename) ? rank.get(a.filename) : 1e9) - (rank.has(b.filename) ? rank.get(b.filename) : 1e9));
    state.index = 0; drawRate();
    status(order.length ? `Queue ordered: the ${order.length} unlabelled photos that would teach the model most come first.`
                        : 'Nothing to order: every photo here has a score. Import or add unlabelled photos to get suggestions.');
  } catch (e) { status('Ordering failed: ' + (e.message || e)); }
  root.focus();
});
(async () => {
  const start = await call('label_start');
  Object.assign(state, {items: start.items, dataDir: start.data_dir, starScores: start.star_scores});
  state.runWarnings = {};
  for (const [label, id, warning] of start.runs) {
    const o = document.createElement('option'); o.value = id; o.textContent = label; $('.wb-run').appendChild(o);
    state.runWarnings[id] = warning;
  }
  $('.wb-run').value = start.run;  // the best run if its held-out SRCC is above 0; else "" (no run)
  warnRun();
  setMode('rate'); status(`${start.items.length} photos, ${start.items.filter(i => i.score === null).length} unlabelled`);
  window.__wbLabel.ready = true;
})();
"""


def build(settings: Settings) -> None:
    desk = LabelDesk.from_settings(settings)

    def label_start() -> dict:
        from workbench.predict import NIMA_ID, chance_warning, default_scorer_id, scorer_choices

        # best first, each with its warning when it ranks no better than chance (shown beside the picker)
        runs = [[label, run_id, chance_warning(run_id, settings)] for label, run_id in scorer_choices(settings)
                if run_id != NIMA_ID]
        default = default_scorer_id(settings)  # the best run if its SRCC is above 0; else no suggestions
        return {"items": desk.queue(), "data_dir": str(settings.data_dir.resolve()), "runs": runs,
                "run": "" if default == NIMA_ID else default, "star_scores": list(desk.stars.scores)}

    # ``seen``: the score the page showed, so a change made in another tab or the CLI is told, not lost silently
    def label_stars(filename: str, stars: int, seen: float | None = UNSEEN) -> dict:
        return _saved(desk.set_stars(filename, int(stars), seen), filename)

    def label_accept(filename: str, suggestion: float, seen: float | None = UNSEEN) -> dict:
        return _saved(desk.accept(filename, float(suggestion), seen), filename)

    def label_clear(filename: str) -> None:
        desk.clear(filename)

    def label_undo() -> dict | None:
        return desk.undo()

    def label_predictions(run_id: str, filenames: list[str]) -> dict:
        return desk.predictions(settings, run_id, list(filenames))

    def label_suggested_order() -> list[str]:
        from workbench.events import drain
        from workbench.labelling.suggest import suggest

        result = drain(suggest(settings, n=200))
        return [item["filename"] for item in result.items] if result else []

    def label_pairs() -> list:
        return [list(p) for p in desk.next_pairs(3)]

    def label_compare(left: str, right: str, outcome: str) -> list:
        desk.compare(left, right, outcome)
        return label_pairs()

    def label_undo_comparison() -> dict | None:
        return desk.undo_comparison()

    def label_apply_comparisons() -> str:
        return desk.labels_from_comparisons()

    functions = [label_start, label_stars, label_accept, label_clear, label_undo, label_predictions,
                 label_suggested_order, label_pairs, label_compare, label_undo_comparison, label_apply_comparisons]
    gr.HTML(HTML, css_template=CSS, js_on_load=JS, server_functions=[_shown_errors(f) for f in functions],
            elem_id="label-desk")


def _saved(write, filename: str) -> dict:
    """What the page needs of a saved label: the stored score, and a note naming the photo when another
    tab or the CLI had changed its score since the page showed it (the page has moved on to the next)."""
    return {"score": write.saved[filename], "note": write.note(named=True)}


def _shown_errors(fn):
    """Run ``fn`` with the page's named arguments; answer ``{"ok": result}`` or ``{"error": message}``.

    A WorkbenchError is something the person can act on, so its message is shown
    on the page; anything else is a bug and keeps its traceback in the server log.
    Not ``functools.wraps``: Gradio reads the signature to decide what to pass.
    """
    def wrapper(data=None):  # the page sends one object of named arguments, or nothing
        try:
            return {"ok": fn(**data) if isinstance(data, dict) else fn()}
        except WorkbenchError as exc:
            return {"error": str(exc)}

    wrapper.__name__ = fn.__name__
    return wrapper
