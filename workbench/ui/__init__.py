"""The Gradio face of the workbench: one module per tab, each a ``build``
function describing its screen and wiring engine calls. Only this package
imports gradio."""
