"""Rating and culling with the keyboard, as in Lightroom and Photo Mechanic.

In the Import preview, the Training-data gallery and Predict's "Best first", with
a photo selected and no text field focused: ←/→ move, a number key puts its score
in the score field (star ratings or tenths of the range, ``keyboard.number_keys``),
Enter saves (in Predict: adds the photo to the training set with that score),
Z undoes and Delete deletes (Training data; Undo brings it back). Predict's
gallery shares its page with the Cull view, which has keys of its own: the one
clicked or tabbed into last (``window.__keysOwner``) gets the keys. The keys press
the same buttons a mouse would, so every rule (validation, undo, messages) stays
in one place on the server; this module only writes the small script that maps
keys to buttons, with the number keys' scores computed by the engine.
"""
from __future__ import annotations

import json

from workbench.config import Settings
from workbench.dataset.ratings import StarMapping
from workbench.dataset.scores import format_score, number_key_scores

GALLERIES = ("import", "data", "predict")  # the LabelledGallery prefixes, and Predict's "Best first"

_SCRIPT = """
<script>
(() => {
  const SCORES = %(scores)s;
  const GALLERIES = %(galleries)s;
  const shown = (el) => el && el.offsetParent !== null;
  const typing = (el) => el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.isContentEditable);
  const visibleGallery = () => GALLERIES.find((p) => shown(document.getElementById(p + "-gallery")));
  // Predict's gallery and the Cull view share a page: the keys go to the one clicked last
  // (by mouse or by Tab); until either is chosen, the Cull view once it shows photos
  const claim = (event) => {
    const at = event.target && event.target.closest ? event.target : null;
    if (at && at.closest("#cull-groups")) window.__keysOwner = "cull";
    else if (at && at.closest("#predict-gallery, #predict-label-panel")) window.__keysOwner = "predict";
  };
  document.addEventListener("pointerdown", claim, true);
  document.addEventListener("focusin", claim, true);
  const cullShowsPhotos = () => {
    const view = document.getElementById("cull-groups");
    return shown(view) && view.querySelector(".cull-photo");
  };
  const press = (id) => {
    const button = document.getElementById(id);
    if (!shown(button) || button.disabled) return false;
    button.click();
    return true;
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const prefix = visibleGallery();
    if (!prefix || (prefix === "predict" && window.__keysOwner !== "predict" && cullShowsPhotos())) return;
    const field = document.querySelector(`#${prefix}-score input, #${prefix}-score textarea`);
    if (typing(event.target)) {
      // Enter in the score field saves (Gradio's submit); then give the keys back to the gallery
      if (event.target === field && (event.key === "Enter" || event.key === "Escape")) {
        setTimeout(() => field.blur(), 50);
      }
      return;
    }
    let handled = false;
    if (event.key === "ArrowRight") handled = press(`${prefix}-next`);
    else if (event.key === "ArrowLeft") handled = press(`${prefix}-prev`);
    else if (event.key === "z" || event.key === "Z") handled = press(`${prefix}-undo`);
    else if (event.key === "Delete") handled = press(`${prefix}-delete`);
    else if (event.key in SCORES && field) {
      field.value = SCORES[event.key];
      field.dispatchEvent(new Event("input", {bubbles: true}));
      field.focus();  // Enter now saves it, Escape leaves it unsaved
      handled = true;
    }
    if (handled) event.preventDefault();
  });
})();
</script>
"""


def key_scores(settings: Settings) -> dict[str, float]:
    """Number key -> score; stars as imported ratings and the Label tab map them (ratings.star_scores)."""
    stars = StarMapping.from_settings(settings).scores if settings.number_keys == "stars" else None
    return number_key_scores(settings.number_keys, settings.score_min, settings.score_max, stars)


def head_script(settings: Settings) -> str:
    """The ``<script>`` for the page head that maps keys to the galleries' buttons."""
    scores = {key: format_score(value) for key, value in key_scores(settings).items()}
    return _SCRIPT % {"scores": json.dumps(scores), "galleries": json.dumps(list(GALLERIES))}


def help_line(settings: Settings, *, can_delete: bool, enter: str = "Enter saves", undo: bool | None = None) -> str:
    """One line under the score field saying which keys do what (Z undo with Delete, unless ``undo`` says)."""
    keys = key_scores(settings)
    first, last = min(keys, key=keys.get), max(keys, key=keys.get)
    numbers = (f"{first}–{last} stars → {format_score(keys[first])}–{format_score(keys[last])}"
               if settings.number_keys == "stars" else "1–9, 0 → tenths of the range")
    extra = (" · Z undo" if (can_delete if undo is None else undo) else "") + (" · Delete to trash" if can_delete else "")
    return f"<small>⌨ ←/→ move · {numbers} · {enter}{extra}</small>"
