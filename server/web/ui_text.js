// latentgraph's one editor extension (served by `latentgraph serve`, listed by GET /extensions:
// server/editor.py). A node's `ui={"text": [...]}` reaches the editor in its `executed`
// message, but the editor shows it only on the few nodes it has code for (PreviewAny); on any
// other node (a plugin's ShoutText) it was dropped. Here it goes into a read-only text box on
// the node, made the first time the node shows text; it is neither saved with the workflow nor
// sent with the prompt.
import { app } from "../../scripts/app.js";

// Nodes the editor itself shows their ui text on: a second box would repeat it.
const SHOWN_BY_EDITOR = new Set(["PreviewAny", "SaveText"]);
const BOX = "latentgraph_ui_text"; // the widget's name
// The widget's type: one of our own. The editor's Vue node view draws a widget of a type it
// knows ("customtext") with a box of its own, which stayed empty; one of a type it does not
// know it draws as the element given.
const BOX_TYPE = "latentgraph_text";
const BOX_HEIGHT = 80; // px: a few lines; the node can be made larger

/** The text as one string: each item of the list on its own paragraph. */
function asText(text) {
  const items = Array.isArray(text) ? text : [text];
  return items.filter((item) => item !== null && item !== undefined).map(String).join("\n\n");
}

/** The node's text box, made on first use (the node grows to hold it). */
function textBox(node) {
  const existing = node.widgets?.find((widget) => widget.name === BOX);
  if (existing) return existing;
  const area = document.createElement("textarea");
  area.className = "comfy-multiline-input"; // the editor's look for its text inputs
  area.readOnly = true;
  area.spellcheck = false;
  const widget = node.addDOMWidget(BOX, BOX_TYPE, area, {
    serialize: false, // not a prompt input
    read_only: true,
    getValue: () => area.value,
    setValue: (value) => {
      area.value = value;
    },
    getMinHeight: () => BOX_HEIGHT,
  });
  widget.serialize = false; // nor a value of the saved workflow
  const [width, height] = node.size;
  const [needWidth, needHeight] = node.computeSize();
  node.setSize([Math.max(width, needWidth), Math.max(height, needHeight)]);
  return widget;
}

app.registerExtension({
  name: "latentgraph.UiText",
  nodeCreated(node) {
    if (SHOWN_BY_EDITOR.has(node.constructor?.comfyClass)) return;
    const onExecuted = node.onExecuted;
    node.onExecuted = function (output) {
      onExecuted?.call(this, output);
      if (output?.text === undefined || output.text === null) return;
      textBox(this).value = asText(output.text);
      this.setDirtyCanvas?.(true, true);
    };
  },
});
