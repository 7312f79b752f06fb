// Camera path editor for ReCapture's Camera Keyframes node: the path in 3D (three.js, vendored under
// web/vendor/three), a time slider, keyframe cameras you drag to orbit them, and a live anchor preview.
//
// The keyframe text widget stays the source of truth: every edit here rewrites that text, typed edits
// redraw the view, and a workflow saved with this extension loads unchanged without it (the editor
// widget is not serialised). The poses come from the server (POST /recapture/camera_path), computed by
// the same code as the node, so what is drawn is the path the graph will use.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
// Our own copy of three.js, not the frontend's: the frontend bundles three.js for Load3D, but only the classes
// Load3D uses (no BufferGeometry, LineSegments, Points or Raycaster), under export names minified anew in each
// release, and it exposes neither that module nor a THREE object to extensions. So the pack keeps its vendored
// copy, with the one line that registers it as window.__THREE__ removed (scripts/vendor_three.sh does that): the
// frontend's copy, always evaluated before any extension, registers alone, and three.js no longer warns of
// "Multiple instances". The two copies never meet: every object this editor makes comes from its own copy.
import * as THREE from "./vendor/three/three.module.min.js";
import { OrbitControls } from "./vendor/three/OrbitControls.js";

const NODE = "ReCaptureCameraKeyframes";
const PRESET_NODE = "ReCaptureCameraTrajectory"; // shown read-only: its path is set by its widgets
const DEGREES_PER_PIXEL = 0.2; // dragging a keyframe camera by one pixel orbits (or turns) it this far
const DISTANCE_PER_PIXEL = 0.005; // ... or moves it this far, in subject distances
// What a drag does, by modifier key: [parameter for sideways, its change per pixel right, for up, per pixel up].
const DRAGS = {
  orbit: ["orbit_left", -DEGREES_PER_PIXEL, "orbit_up", DEGREES_PER_PIXEL], // plain drag: the camera goes where you drag
  move: ["truck_right", DISTANCE_PER_PIXEL, "pedestal_up", DISTANCE_PER_PIXEL], // shift
  turn: ["pan_right", DEGREES_PER_PIXEL, "tilt_up", DEGREES_PER_PIXEL], // alt
};
const HEIGHT = 300; // the widget's minimum height (getMinHeight), margins included
// Events the editor keeps to itself: under Nodes 2.0 the editor sits inside the node's element, where a pointerdown
// that reaches the node starts dragging the node (and a wheel zooms the graph, a right click opens the node's menu).
const OWN_EVENTS = ["pointerdown", "pointermove", "pointerup", "pointercancel", "mousedown", "mousemove", "mouseup",
  "click", "dblclick", "contextmenu", "wheel"];
const NO_PREVIEW_YET = "Anchor preview: run the graph once to see the anchor of this frame here.";
const NOT_CONNECTED = "Anchor preview: connect this node's trajectory to a PointCloudWarp and run the graph.";
const COLOURS = { source: 0x4caf50, path: 0x5c7cfa, key: 0xffa94d, current: 0xffffff, pivot: 0xff6b6b };

// --- keyframe text: the same grammar as recapture_core/camera/keyframes.py ------------------------------
function parseLine(line) {
  // {frame, params: Map(name -> text), comment} of a keyframe line, or null for a comment or blank line.
  const hash = line.indexOf("#");
  const [body, comment] = hash < 0 ? [line, ""] : [line.slice(0, hash), line.slice(hash)];
  const match = body.match(/^\s*(\d+)\s*:(.*)$/);
  if (!match) return null;
  const params = new Map();
  for (const part of match[2].split(",")) {
    const [name, value] = part.split("=").map((s) => s && s.trim());
    if (name) params.set(name, value);
  }
  return { frame: Number(match[1]), params, comment };
}

const formatValue = (value) => String(Math.round(value * 1000) / 1000);

function parseKeyframes(text) {
  // [[frame, Map(name -> number)], ...] in the text's order.
  return text.split("\n").map(parseLine).filter(Boolean)
    .map(({ frame, params }) => [frame, new Map([...params].map(([name, value]) => [name, Number(value)]))]);
}

export function setKeyframeParams(text, frame, changes) {
  // The text with keyframe `frame`'s parameters updated (names in `changes` set, others kept).
  const lines = text.split("\n");
  const i = lines.findIndex((line) => parseLine(line)?.frame === frame);
  if (i < 0) return text;
  const { params, comment } = parseLine(lines[i]);
  for (const [name, value] of Object.entries(changes)) params.set(name, formatValue(value));
  const joined = [...params].map(([name, value]) => `${name}=${value}`).join(", ");
  lines[i] = `${frame}: ${joined}${comment ? " " + comment : ""}`;
  return lines.join("\n");
}

export function addKeyframe(text, frame) {
  // The text with a keyframe at `frame`, its move interpolated from the keyframes around it (zoom
  // geometrically, the rest linearly; past the ends, the nearest keyframe's), inserted in frame order.
  const keys = parseKeyframes(text).sort((a, b) => a[0] - b[0]);
  if (keys.some(([f]) => f === frame)) return text;
  const before = [...keys].reverse().find(([f]) => f < frame), after = keys.find(([f]) => f > frame);
  const t = before && after ? (frame - before[0]) / (after[0] - before[0]) : 0;
  const names = new Set([...(before?.[1].keys() ?? []), ...(after?.[1].keys() ?? [])]);
  const params = [];
  for (const name of names) {
    const neutral = name === "zoom" ? 1 : 0;
    const a = before?.[1].get(name) ?? (before ? neutral : after[1].get(name) ?? neutral);
    const b = after?.[1].get(name) ?? (after ? neutral : a);
    const value = name === "zoom" ? a * Math.pow(b / a, t) : a + (b - a) * t;
    params.push(`${name}=${formatValue(value)}`);
  }
  const lines = text.split("\n");
  const at = lines.findIndex((line) => (parseLine(line)?.frame ?? -1) > frame);
  lines.splice(at < 0 ? lines.length : at, 0, `${frame}: ${params.join(", ")}`.trimEnd());
  return lines.join("\n");
}

export function removeKeyframe(text, frame) {
  // The text without keyframe `frame`'s line (the last keyframe is kept: a path needs one).
  if (parseKeyframes(text).length < 2) return text;
  return text.split("\n").filter((line) => parseLine(line)?.frame !== frame).join("\n");
}

export function keyframeParam(text, frame, name) {
  // Keyframe `frame`'s value of `name` (0 when it does not say), or null when there is no such keyframe.
  const key = parseKeyframes(text).find(([f]) => f === frame);
  return key ? key[1].get(name) ?? 0 : null;
}

// --- the view -------------------------------------------------------------------------------------------
function placeholder(message) {
  // A drawn panel (an inline SVG) that says why there is no anchor to show, in place of a broken-image icon.
  const escape = (text) => text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const lines = [];
  for (const word of message.split(/\s+/)) {
    const last = lines.length - 1;
    if (last >= 0 && (lines[last] + " " + word).length <= 24) lines[last] += " " + word;
    else lines.push(word);
  }
  const top = 120 - lines.length * 8;
  const text = lines.map((line, i) => `<tspan x="80" y="${top + i * 16}">${escape(line)}</tspan>`).join("");
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="160" height="240" viewBox="0 0 160 240">` +
    `<rect x="1" y="1" width="158" height="238" rx="6" fill="#181818" stroke="#555" stroke-dasharray="6 4"/>` +
    `<text font-family="sans-serif" font-size="12" fill="#aaa" text-anchor="middle">${text}</text></svg>`;
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}

function frustum(pose, hfovDeg, zoom, size, colour) {
  // Line segments of a camera pyramid; `pose` is the row-major 4x4 target_to_source (OpenCV axes).
  const half = Math.tan((hfovDeg * Math.PI) / 360) / zoom;
  const corners = [[-half, -half * 0.6], [half, -half * 0.6], [half, half * 0.6], [-half, half * 0.6]]
    .map(([x, y]) => new THREE.Vector3(x * size, y * size, size));
  const apex = new THREE.Vector3(0, 0, 0);
  const points = [];
  for (let i = 0; i < 4; i++) points.push(apex, corners[i], corners[i], corners[(i + 1) % 4]);
  const up = new THREE.Vector3(0, -half * 0.9 * size, size); // a tick on the camera's up side
  points.push(corners[0].clone().lerp(corners[1], 0.5), up);
  const geometry = new THREE.BufferGeometry().setFromPoints(points);
  const lines = new THREE.LineSegments(geometry, new THREE.LineBasicMaterial({ color: colour }));
  lines.matrixAutoUpdate = false;
  lines.matrix.set(...pose);
  return lines;
}

class Editor {
  constructor(node) {
    this.node = node;
    this.path = null;
    this.frame = 0;
    this.generation = 0;
    this.container = document.createElement("div");
    // The editor's size comes from outside, never from what it holds: under Nodes 2.0 the node lays its widgets
    // out as HTML, where the canvas's drawing buffer (set from the canvas's size), the preview's picture or an
    // unwrapped line would widen the node. So: no intrinsic width (contain: inline-size), the view's row takes
    // the height left over (contain: size), the status line wraps. The minimum height is the widget's own
    // (set in nodeCreated); widget-expands lets the editor grow with the node, as the frontend's Load3D does.
    this.container.className = "widget-expands";
    this.container.style.cssText = "display:flex;flex-direction:column;gap:4px;width:100%;height:100%;min-width:0;" +
      "box-sizing:border-box;contain:inline-size";
    for (const type of OWN_EVENTS) this.container.addEventListener(type, (event) => event.stopPropagation());
    const row = document.createElement("div");
    row.style.cssText = "display:flex;gap:4px;flex:1;min-height:0;contain:size";
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(1);
    this.canvas = this.renderer.domElement;
    this.canvas.style.cssText = "flex:2;min-width:0;height:100%;border-radius:4px;touch-action:none";
    this.preview = document.createElement("img");
    this.showPlaceholder(NO_PREVIEW_YET);
    this.preview.style.cssText = "flex:1;min-width:0;object-fit:contain;background:#111;border-radius:4px";
    row.append(this.canvas, this.preview);
    const controls = document.createElement("div");
    controls.style.cssText = "display:flex;gap:6px;align-items:center";
    this.play = document.createElement("button");
    this.play.textContent = "▶";
    this.play.title = "Play the path";
    this.play.addEventListener("click", () => this.togglePlay());
    this.slider = document.createElement("input");
    this.slider.type = "range";
    this.slider.min = "0";
    this.slider.step = "1";
    this.slider.style.flex = "1";
    this.readOnly = node.comfyClass !== NODE;
    this.addKey = document.createElement("button");
    this.addKey.textContent = "+ key";
    this.addKey.title = "Add a keyframe at the current frame (its move interpolated from its neighbours)";
    this.addKey.addEventListener("click", () => this.setKeyframes(addKeyframe(this.inputs().keyframes, this.frame)));
    this.removeKey = document.createElement("button");
    this.removeKey.textContent = "− key";
    this.removeKey.title = "Remove the keyframe at the current frame";
    this.removeKey.addEventListener("click", () => this.setKeyframes(removeKeyframe(this.inputs().keyframes, this.frame)));
    controls.append(this.play, this.slider, ...(this.readOnly ? [] : [this.addKey, this.removeKey]));
    this.status = document.createElement("div");
    this.status.style.cssText = "font-size:11px;opacity:0.8;white-space:normal;overflow-wrap:anywhere";
    this.container.append(row, controls, this.status);

    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(0x202020);
    this.world = new THREE.Group(); // OpenCV axes (y down, z forward) turned so that up is up on screen
    this.world.rotation.x = Math.PI;
    this.scene.add(this.world);
    this.pathGroup = new THREE.Group();
    this.cloudGroup = new THREE.Group(); // the scene's first frame, once a PointCloudWarp fed by this node has run
    this.world.add(this.pathGroup, this.cloudGroup);
    this.onExecuted = (event) => {
      const warp = this.warpNode();
      if (warp && String(event.detail?.node) === String(warp.id)) this.loadCloud(true);
    };
    api.addEventListener("executed", this.onExecuted);
    this.camera = new THREE.PerspectiveCamera(50, 1.5, 0.01, 1000);
    this.controls = new OrbitControls(this.camera, this.canvas);
    this.controls.addEventListener("change", () => this.draw());
    this.picks = [];
    this.slider.addEventListener("input", () => this.setFrame(Number(this.slider.value)));
    this.canvas.addEventListener("pointerdown", (e) => this.pointerDown(e));
    // The drawing buffer follows the canvas's size (a resized node, the layout settling after the first draw).
    this.resized = new ResizeObserver(() => this.draw());
    this.resized.observe(this.canvas);
    this.lastInputs = "";
    this.timer = setInterval(() => this.poll(), 400);
  }

  widget(name) {
    return this.node.widgets?.find((w) => w.name === name);
  }

  inputs() {
    const value = (name, fallback) => this.widget(name)?.value ?? fallback;
    const shared = { num_frames: value("num_frames", 25), hfov_deg: value("hfov_deg", 60.0), subject_distance: value("subject_distance", 1.0) };
    if (this.readOnly) return { preset: value("preset", "static"), amount: value("amount", 0), easing: value("easing", "ease-in-out"), ...shared };
    return { keyframes: value("keyframes", "0:"), interpolation: value("interpolation", "pose: slerp + spline"), ...shared };
  }

  poll() {
    if (!this.container.isConnected) return;
    const inputs = JSON.stringify(this.inputs());
    if (inputs !== this.lastInputs) {
      this.lastInputs = inputs;
      this.refresh();
    }
  }

  async refresh() {
    const generation = ++this.generation;
    const reply = await api.fetchApi("/recapture/camera_path", { method: "POST", body: JSON.stringify(this.inputs()) });
    const body = await reply.json();
    if (generation !== this.generation) return; // a newer edit is on its way
    if (!reply.ok) {
      this.status.textContent = body.error;
      return;
    }
    this.path = body;
    this.slider.max = String(body.num_frames - 1);
    this.frame = Math.min(this.frame, body.num_frames - 1);
    this.slider.value = String(this.frame);
    this.build();
    this.updatePreview();
    this.loadCloud(false);
  }

  async loadCloud(again) {
    const warp = this.warpNode();
    if (!warp || (!again && this.cloudFor === warp.id)) return;
    this.cloudFor = warp.id;
    const reply = await api.fetchApi("/recapture/point_cloud", { method: "POST", body: JSON.stringify({ node: String(warp.id) }) });
    if (!reply.ok) return; // not run yet: the view shows the path alone
    const body = await reply.json();
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute("position", new THREE.BufferAttribute(new Float32Array(body.positions), 3));
    geometry.setAttribute("color", new THREE.BufferAttribute(new Uint8Array(body.colours), 3, true));
    const size = 0.012 * (this.path?.subject_distance ?? 1);
    this.cloudGroup.clear();
    this.cloudGroup.add(new THREE.Points(geometry, new THREE.PointsMaterial({ size, vertexColors: true })));
    this.cloudPoints = body.count;
    this.draw();
  }

  togglePlay() {
    if (this.playing) {
      clearInterval(this.playing);
      this.playing = null;
      this.play.textContent = "▶";
      return;
    }
    this.play.textContent = "❚❚";
    this.playing = setInterval(() => {
      if (!this.path) return;
      const next = (this.frame + 1) % this.path.num_frames;
      this.slider.value = String(next);
      this.setFrame(next);
    }, 150);
  }

  build() {
    this.pathGroup.clear();
    this.picks = [];
    const { poses, zoom, hfov_deg: hfov, subject_distance: d, keyframe_frames: keys } = this.path;
    const size = 0.22 * d;
    const identity = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    this.pathGroup.add(frustum(identity, hfov, 1, size * 1.2, COLOURS.source));
    poses.forEach((pose, i) => {
      const colour = i === this.frame ? COLOURS.current : keys.includes(i) ? COLOURS.key : COLOURS.path;
      const scale = i === this.frame || keys.includes(i) ? size : size * 0.5;
      this.pathGroup.add(frustum(pose, hfov, zoom[i], scale, colour));
    });
    for (const frame of keys) {
      const pose = poses[frame];
      const handle = new THREE.Mesh(new THREE.SphereGeometry(0.04 * d, 12, 8),
        new THREE.MeshBasicMaterial({ color: COLOURS.key }));
      handle.position.set(pose[3], pose[7], pose[11]);
      handle.userData.frame = frame;
      this.pathGroup.add(handle);
      this.picks.push(handle);
    }
    const pivot = new THREE.Mesh(new THREE.SphereGeometry(0.03 * d, 12, 8), new THREE.MeshBasicMaterial({ color: COLOURS.pivot }));
    pivot.position.set(0, 0, d);
    this.pathGroup.add(pivot);
    if (!this.framed) { // aim the view once; after that it stays where the user left it
      this.framed = true;
      this.controls.target.set(0, 0, -d / 2); // the middle between camera and pivot, in the turned world
      this.camera.position.set(1.1 * d, 0.8 * d, 0.5 * d);
      this.controls.update(); // dispatches "change", which draws
    }
    this.world.updateMatrixWorld(true);
    this.status.textContent = this.readOnly ? `${this.path.num_frames} frames; frame ${this.frame}. Drag to turn the view.`
      : `${this.path.num_frames} frames, keyframes at ${keys.join(", ")}; frame ${this.frame}. ` +
        "Drag an orange ball to orbit that keyframe camera (shift: move it, alt: turn it); drag elsewhere to turn the view.";
    this.draw();
  }

  draw() {
    const width = Math.max(1, this.canvas.clientWidth), height = Math.max(1, this.canvas.clientHeight);
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.renderer.setSize(width, height, false);
      this.camera.aspect = width / height;
      this.camera.updateProjectionMatrix();
    }
    this.renderer.render(this.scene, this.camera); // (never controls.update() here: it dispatches "change")
  }

  setFrame(frame) {
    this.frame = frame;
    if (this.path) this.build();
    this.updatePreview();
  }

  // The PointCloudWarp node this path feeds, for the anchor preview.
  warpNode() {
    for (const link of Object.values(this.node.graph?.links ?? {})) {
      if (!link || link.origin_id !== this.node.id) continue;
      const target = this.node.graph.getNodeById(link.target_id);
      if (target?.comfyClass === "ReCapturePointCloudWarp") return target;
    }
    return null;
  }

  showPlaceholder(message) {
    this.preview.src = placeholder(message);
    this.preview.alt = message;
    this.preview.title = "";
    this.previewed = null;
  }

  async updatePreview() {
    const warp = this.warpNode();
    if (!warp) this.showPlaceholder(NOT_CONNECTED);
    if (!warp || !this.path) return;
    const request = { node: String(warp.id), frame: this.frame, size: 192 };
    if (!this.readOnly) Object.assign(request, { keyframes: this.inputs().keyframes, interpolation: this.inputs().interpolation });
    const asked = this.previewAsked = (this.previewAsked ?? 0) + 1;
    const reply = await api.fetchApi("/recapture/anchor_preview", { method: "POST", body: JSON.stringify(request) });
    const body = await reply.json();
    if (asked !== this.previewAsked) return; // the server computes previews side by side: only the newest one shows
    if (reply.ok) {
      this.preview.src = `data:image/png;base64,${body.image}`;
      this.preview.title = `frame ${body.frame}: ${(100 * body.hole_ratio).toFixed(1)}% holes`;
      this.previewed = body;
    } else {
      this.showPlaceholder(body.error ?? NO_PREVIEW_YET);
    }
  }

  // --- dragging keyframe cameras ------------------------------------------------------------------------
  pick(event) {
    const rect = this.canvas.getBoundingClientRect();
    const pointer = new THREE.Vector2(((event.clientX - rect.left) / rect.width) * 2 - 1, -((event.clientY - rect.top) / rect.height) * 2 + 1);
    const ray = new THREE.Raycaster();
    ray.setFromCamera(pointer, this.camera);
    return ray.intersectObjects(this.picks)[0]?.object ?? null;
  }

  pointerDown(event) {
    const handle = this.pick(event);
    if (!handle) return;
    event.stopPropagation();
    event.preventDefault();
    this.controls.enabled = false;
    const frame = handle.userData.frame;
    const text = this.inputs().keyframes;
    const [across, perRight, upward, perUp] = DRAGS[event.shiftKey ? "move" : event.altKey ? "turn" : "orbit"];
    const start = { x: event.clientX, y: event.clientY, across: keyframeParam(text, frame, across), up: keyframeParam(text, frame, upward) };
    const move = (e) => {
      const dx = e.clientX - start.x, dy = e.clientY - start.y;
      const changes = {};
      if (dx) changes[across] = start.across + dx * perRight;
      if (dy) changes[upward] = start.up - dy * perUp; // screen y grows downwards
      this.setKeyframes(setKeyframeParams(text, frame, changes));
    };
    const up = (e) => {
      move(e);
      this.canvas.removeEventListener("pointermove", move);
      this.canvas.removeEventListener("pointerup", up);
      this.canvas.removeEventListener("pointercancel", up);
      this.controls.enabled = true;
    };
    // Captured on the canvas: the editor keeps its pointer events from reaching the page (see OWN_EVENTS).
    this.canvas.setPointerCapture(event.pointerId);
    this.canvas.addEventListener("pointermove", move);
    this.canvas.addEventListener("pointerup", up);
    this.canvas.addEventListener("pointercancel", up);
  }

  setKeyframes(text) {
    const widget = this.widget("keyframes");
    if (!widget || widget.value === text) return;
    widget.value = text;
    widget.callback?.(text);
    this.node.graph?.setDirtyCanvas(true, true);
    this.poll();
  }

  // For tests and scripts: where keyframe `frame`'s handle is on screen, and the camera position of a frame.
  screenOfKeyframe(frame) {
    const handle = this.picks.find((p) => p.userData.frame === frame);
    if (!handle) return null;
    const position = handle.getWorldPosition(new THREE.Vector3()).project(this.camera);
    const rect = this.canvas.getBoundingClientRect();
    return [rect.left + ((position.x + 1) / 2) * rect.width, rect.top + ((1 - position.y) / 2) * rect.height];
  }

  cameraPosition(frame) {
    const pose = this.path?.poses[frame];
    return pose ? [pose[3], pose[7], pose[11]] : null;
  }

  remove() {
    clearInterval(this.timer);
    if (this.playing) clearInterval(this.playing);
    api.removeEventListener("executed", this.onExecuted);
    this.resized.disconnect();
    this.controls.dispose();
    this.renderer.dispose();
  }
}

app.registerExtension({
  name: "recapture.cameraEditor",
  async nodeCreated(node) {
    if (node.comfyClass !== NODE && node.comfyClass !== PRESET_NODE) return;
    const editor = new Editor(node);
    const widget = node.addDOMWidget("camera_editor", "recapture_camera_editor", editor.container,
      { hideOnZoom: false, getMinHeight: () => HEIGHT });
    widget.serialize = false; // the keyframe text is the state: saved workflows do not depend on this extension
    // The classic renderer sizes the widget from computeLayoutSize; Nodes 2.0 lays the element out as HTML and
    // reads neither, so the element itself asks for the same height (less the margins the classic one leaves).
    editor.container.style.minHeight = `${widget.computeLayoutSize(node).minHeight - 2 * widget.margin}px`;
    node.recaptureEditor = editor;
    const removed = node.onRemoved;
    node.onRemoved = function () {
      editor.remove();
      return removed?.apply(this, arguments);
    };
    node.setSize([Math.max(node.size[0], 480), node.size[1] + HEIGHT]);
    requestAnimationFrame(() => editor.poll());
  },
});
