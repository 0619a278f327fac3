"""The page of ``openpose-lite serve`` in a real browser: Chromium from the system's packages, driven by Playwright,
against the command itself on a free loopback port.

An image goes in through the file chooser and its people must be drawn where the API says they are
(paint under every keypoint, the keypoint's name on hover); then the webcam mode runs on Chromium's
fake camera, fed a generated video of people walking, and poses must arrive with their latency
shown. Screenshots of both go to the test's own folder.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import import_optional

from openpose_lite.data.synthetic import SceneConfig, generate_scene
from openpose_lite.data.synthetic_video import VideoConfig, generate_video

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium installed (Debian: apt-get install chromium; .ci/run installs it)",
                allow_module_level=True)
import_optional("starlette")
httpx = import_optional("httpx2")
sync_api = import_optional("playwright.sync_api")

from test_serve import serve_command  # noqa: E402

TOKEN = "a-token-for-the-page"
# Chromium on a machine with no network but loopback: no sandbox (root in CI), no GPU, no background traffic.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def write_y4m(path: Path, hw: tuple[int, int] = (240, 320), frames: int = 30) -> Path:
    """A generated walking video as YUV4MPEG2 (4:2:0), the raw format Chromium's fake camera plays in a loop."""
    video = generate_video(VideoConfig(image_hw=hw, num_frames=frames, num_people=3, seed=3))
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{hw[1]} H{hw[0]} F30:1 Ip A1:1 C420jpeg\n".encode())
        for frame in video:
            out.write(b"FRAME\n" + cv2.cvtColor(frame.image, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def overlay_alpha(page, points) -> list[int]:
    """The overlay's opacity (0-255) at each (x, y) image pixel."""
    return page.evaluate("""(points) => {
        const ctx = document.getElementById("overlay").getContext("2d");
        return points.map(([x, y]) => ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data[3]);
    }""", points)


def test_the_page_draws_the_people_of_an_image_and_of_the_webcam(checkpoint, tmp_path):
    image, _, _ = generate_scene(np.random.default_rng(5), SceneConfig(image_hw=(240, 320)), num_people=2)
    photo = tmp_path / "scene.jpg"
    cv2.imwrite(str(photo), image)
    camera = write_y4m(tmp_path / "walk.y4m")
    flags = [*FLAGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
             f"--use-file-for-fake-video-capture={camera}"]
    with serve_command(["--weights", str(checkpoint), "--token", TOKEN]) as url, sync_api.sync_playwright() as pw:
        expected = httpx.post(f"{url}v1/pose", content=photo.read_bytes(),
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60).json()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 640})
            page.goto(f"{url}?token={TOKEN}")  # the page's own requests then carry the token as a cookie
            page.wait_for_function("document.getElementById('model').textContent.includes('vgg19_paf')")

            page.set_input_files("#file", str(photo))
            page.wait_for_function("document.body.dataset.people !== undefined", timeout=60_000)
            assert page.evaluate("document.body.dataset.people") == str(len(expected["openpose"]["people"]))
            people = [np.reshape(p["pose_keypoints_2d"], (-1, 3)) for p in expected["openpose"]["people"]]
            found = np.concatenate([kps[kps[:, 2] > 0, :2] for kps in people])
            inside = found[(found >= 0).all(1) & (found <= [image.shape[1] - 1, image.shape[0] - 1]).all(1)]
            assert len(people) > 0 and len(inside) > 0.9 * len(found)  # a few are refined past the border
            assert (np.asarray(overlay_alpha(page, inside.tolist())) > 0).all()
            painted = page.evaluate("""() => {
                const c = document.getElementById("overlay");
                const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < data.length; i += 4) n += data[i] > 0; return n / (c.width * c.height);
            }""")
            assert 0 < painted < 0.5  # skeletons, not a filled canvas

            # Hovering over the keypoint farthest from every other one names it.
            skeleton = httpx.get(f"{url}v1/model", headers={"Authorization": f"Bearer {TOKEN}"}).json()["skeleton"]
            owners = [(n, k) for n, kps in enumerate(people) for k in np.flatnonzero(kps[:, 2] > 0)]
            gaps = np.linalg.norm(found[:, None] - found[None], axis=-1) + np.eye(len(found)) * 1e9
            lone = int(np.argmax(gaps.min(axis=1)))
            box = page.locator("#overlay").bounding_box()
            scale = box["width"] / expected["width"]
            page.mouse.move(box["x"] + found[lone, 0] * scale, box["y"] + found[lone, 1] * scale)
            tip = page.locator("#tip")
            tip.wait_for(state="visible")
            assert tip.text_content().startswith(f"{skeleton['keypoints'][owners[lone][1]]}: person {owners[lone][0] + 1} ")
            page.screenshot(path=str(tmp_path / "serve_image.png"))

            page.click("#camera")
            page.wait_for_function("Number(document.body.dataset.frames || 0) >= 3", timeout=60_000)
            assert re.match(r"^\d+ ms \(median of the last \d+ frames\), \d+ frames answered",
                            page.text_content("#latency"))
            size = page.evaluate("[document.getElementById('overlay').width, document.getElementById('overlay').height]")
            assert size == [320, 240]  # the overlay follows the camera's frames
            page.screenshot(path=str(tmp_path / "serve_webcam.png"))
            page.click("#camera")
        finally:
            browser.close()
    assert (tmp_path / "serve_image.png").stat().st_size > 0 and (tmp_path / "serve_webcam.png").stat().st_size > 0
