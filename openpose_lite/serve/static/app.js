// The page of `openpose-lite serve`: an image (chosen or dropped) or the webcam in, the people drawn over it.
// Images go to POST v1/pose as the raw body; webcam frames go over the WebSocket v1/ws as JPEG, at most two
// in flight: the server runs the newest one it holds, and the latency shown is measured here, from sending
// a frame to drawing its people. The skeleton and its colours come from GET v1/model.
"use strict";

const $ = (id) => document.getElementById(id);
const page = { model: null, people: [], radius: 4 };
const camera = { stream: null, socket: null, sent: new Map(), next: 0, busy: false, latencies: [], answered: 0 };

function say(text, kind) {
  $("status").textContent = text;
  $("status").dataset.kind = kind || "info";
}

async function loadModel() {
  const response = await fetch("v1/model");
  const model = await response.json();
  if (!response.ok) throw new Error(model.error || response.statusText);
  page.model = model;
  const size = Array.isArray(model.input_size) ? model.input_size.join("x") : model.input_size;
  $("model").textContent = `${model.title} (${model.architecture}), ${model.skeleton.name} skeleton, ` +
    `${model.backend} ${model.precision} on ${model.device}, input ${size}`;
}

// Skeleton colours are BGR (OpenCV's order, as the server draws them).
const css = (bgr) => `rgb(${bgr[2]}, ${bgr[1]}, ${bgr[0]})`;

const triples = (flat) => Array.from({ length: Math.floor(flat.length / 3) }, (_, k) => flat.slice(3 * k, 3 * k + 3));
// Hands and faces, for models that find them (drawn as dots, in these colours).
const PARTS = { face_keypoints_2d: "#ffffff", hand_left_keypoints_2d: "#ffd54f", hand_right_keypoints_2d: "#4fc3f7" };

function peopleOf(answer) {
  return answer.openpose.people.map((person, i) => ({
    points: triples(person.pose_keypoints_2d),
    parts: Object.keys(PARTS).map((name) => [PARTS[name], triples(person[name] || [])]),
    score: answer.coco[i] ? answer.coco[i].score : 0,
  }));
}

// Draws the people of one answer on the overlay, in the image's pixels (the overlay is scaled with the image).
function draw(answer) {
  const skeleton = page.model.skeleton, canvas = $("overlay");
  canvas.width = answer.width;
  canvas.height = answer.height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const thickness = Math.max(2, Math.round(Math.hypot(answer.width, answer.height) / 150));
  page.radius = Math.max(2, thickness);
  const hidden = new Set(skeleton.hidden_limbs);
  const limbs = skeleton.limbs.map((limb, i) => i).filter((i) => !hidden.has(i));
  const pointColour = skeleton.keypoints.map(() => [255, 255, 255]);
  for (const i of limbs.slice().reverse()) {  // the first limb that uses a keypoint gives it its colour
    pointColour[skeleton.limbs[i][0]] = pointColour[skeleton.limbs[i][1]] = skeleton.colours[i];
  }
  page.people = peopleOf(answer);
  ctx.lineCap = "round";
  ctx.lineWidth = thickness;
  for (const person of page.people) {
    const p = person.points;
    for (const i of limbs) {
      const [a, b] = skeleton.limbs[i];
      if (p[a][2] <= 0 || p[b][2] <= 0) continue;
      ctx.strokeStyle = css(skeleton.colours[i]);
      ctx.beginPath();
      ctx.moveTo(p[a][0], p[a][1]);
      ctx.lineTo(p[b][0], p[b][1]);
      ctx.stroke();
    }
    p.forEach(([x, y, c], k) => {
      if (c <= 0) return;
      ctx.fillStyle = css(pointColour[k]);
      ctx.beginPath();
      ctx.arc(x, y, page.radius, 0, 2 * Math.PI);
      ctx.fill();
    });
    for (const [colour, points] of person.parts) {
      ctx.fillStyle = colour;
      for (const [x, y, c] of points) {
        if (c <= 0) continue;
        ctx.beginPath();
        ctx.arc(x, y, Math.max(1, page.radius / 2), 0, 2 * Math.PI);
        ctx.fill();
      }
    }
  }
  document.body.dataset.people = String(page.people.length);
}

// Keypoint names on hover: the nearest found keypoint within a few pixels of the pointer.
function hover(event) {
  const canvas = $("overlay"), tip = $("tip"), box = canvas.getBoundingClientRect();
  const scale = canvas.width / box.width;
  const x = (event.clientX - box.left) * scale, y = (event.clientY - box.top) * scale;
  let best = null, reach = Math.max(8 * scale, 3 * page.radius);
  page.people.forEach((person, n) => person.points.forEach(([px, py, c], k) => {
    const d = Math.hypot(px - x, py - y);
    if (c > 0 && d <= reach) { reach = d; best = { n, k, c, score: person.score }; }
  }));
  if (!best) { tip.hidden = true; return; }
  tip.textContent = `${page.model.skeleton.keypoints[best.k]}: person ${best.n + 1} ` +
    `(score ${best.score.toFixed(2)}), confidence ${best.c.toFixed(2)}`;
  tip.hidden = false;
  const px = event.clientX - box.left, py = event.clientY - box.top;  // beside the pointer, inside the image
  tip.style.left = `${px + 12 + tip.offsetWidth > box.width ? Math.max(0, px - 12 - tip.offsetWidth) : px + 12}px`;
  tip.style.top = `${py + 12 + tip.offsetHeight > box.height ? Math.max(0, py - 12 - tip.offsetHeight) : py + 12}px`;
}

function show(element) {
  $("stage").hidden = false;
  $("hint").hidden = true;
  $("photo").hidden = element !== "photo";
  $("video").hidden = element !== "video";
}

async function sendImage(file) {
  await ready;
  if (!file || !page.model) return;
  stopCamera();
  delete document.body.dataset.people;
  const photo = $("photo");
  if (photo.src) URL.revokeObjectURL(photo.src);
  photo.src = URL.createObjectURL(file);
  show("photo");
  $("overlay").getContext("2d").clearRect(0, 0, $("overlay").width, $("overlay").height);
  say(`sending ${file.name}…`);
  const start = performance.now();
  const response = await fetch("v1/pose", {
    method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" },
  });
  const answer = await response.json();
  if (!response.ok) {
    document.body.dataset.people = "error";
    say(`${response.status}: ${answer.error}`, "error");
    return;
  }
  draw(answer);
  const ms = performance.now() - start;
  $("latency").textContent = `${ms.toFixed(0)} ms for ${file.name}`;
  say(`${page.people.length} ${page.people.length === 1 ? "person" : "people"} in ${file.name} ` +
      `(${answer.width}x${answer.height})`);
}

// ------------------------------------------------------------------------------------------ webcam
async function startCamera() {
  await ready;
  camera.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  const video = $("video");
  video.srcObject = camera.stream;
  show("video");
  await video.play();
  Object.assign(camera, { sent: new Map(), next: 0, busy: false, latencies: [], answered: 0 });
  const url = new URL("v1/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  camera.socket = new WebSocket(url);
  camera.socket.onopen = pump;
  camera.socket.onmessage = received;
  camera.socket.onclose = () => { if (camera.stream) say("the server closed the connection", "error"); };
  $("camera").textContent = "Stop webcam";
  say("webcam on");
}

function stopCamera() {
  if (!camera.stream) return;
  camera.stream.getTracks().forEach((track) => track.stop());
  camera.stream = null;
  if (camera.socket) camera.socket.close();
  camera.socket = null;
  $("video").srcObject = null;
  $("camera").textContent = "Start webcam";
  say("webcam off");
}

// Keeps two frames in flight: one the server runs, the next one waiting (replaced there by a newer one).
function pump() {
  if (!camera.stream || !camera.socket || camera.socket.readyState !== WebSocket.OPEN) return;
  if (camera.busy || camera.sent.size >= 2) return;
  const video = $("video");
  if (!video.videoWidth) { setTimeout(pump, 50); return; }
  camera.busy = true;
  const grab = document.createElement("canvas");
  grab.width = video.videoWidth;
  grab.height = video.videoHeight;
  grab.getContext("2d").drawImage(video, 0, 0);
  grab.toBlob((blob) => {
    camera.busy = false;
    if (!camera.socket || camera.socket.readyState !== WebSocket.OPEN) return;
    camera.sent.set(camera.next++, performance.now());
    camera.socket.send(blob);
    pump();
  }, "image/jpeg", 0.85);
}

function received(event) {
  const answer = JSON.parse(event.data);
  const sentAt = camera.sent.get(answer.frame);
  for (const frame of camera.sent.keys()) if (frame <= answer.frame) camera.sent.delete(frame);  // dropped ones too
  if (answer.error) {
    say(`frame ${answer.frame}: ${answer.error}`, "error");
  } else {
    draw(answer);
    camera.answered += 1;
    camera.latencies.push(performance.now() - sentAt);
    if (camera.latencies.length > 30) camera.latencies.shift();
    const sorted = camera.latencies.slice().sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    $("latency").textContent = `${median.toFixed(0)} ms (median of the last ${sorted.length} frames), ` +
      `${camera.answered} frames answered, ${answer.dropped} dropped by the server for newer ones`;
    document.body.dataset.frames = String(camera.answered);
    say(`webcam: ${page.people.length} ${page.people.length === 1 ? "person" : "people"}`);
  }
  pump();
}

// ------------------------------------------------------------------------------------------ wiring
$("file").addEventListener("change", (event) => sendImage(event.target.files[0]).catch((e) => say(String(e), "error")));
$("camera").addEventListener("click", () => {
  if (camera.stream) stopCamera();
  else startCamera().catch((e) => say(`webcam: ${e.message || e}`, "error"));
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  sendImage(event.dataTransfer.files[0]).catch((e) => say(String(e), "error"));
});
$("overlay").addEventListener("mousemove", hover);
$("overlay").addEventListener("mouseleave", () => { $("tip").hidden = true; });
const ready = loadModel().catch((e) => say(`GET v1/model: ${e.message || e}`, "error"));
