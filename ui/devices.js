// Devices: the camera, microphone and speaker pickers (kept current as devices come and go),
// the camera preview (raw frames over a channel) and the microphone meter, and the test sound.
import * as bridge from './bridge.js';
import { EVENTS, describeError, listen } from './bridge.js';
import { $ } from './dom.js';

const KINDS = ['camera', 'microphone', 'speaker'];
const PREVIEW_SIZE = { width: 320, height: 180, fps: 30 };

// The preview and the meter run while at least one screen on show holds them (the lobby, the
// call); the router enters the next screen before leaving the last, so they run on between.
const capture = { holders: 0 };

const showDeviceStatus = (text) => { $('devices-status').textContent = text; };

/** Lists the devices and binds the pickers, the test sound and the device events (a start-up step). */
export async function setup() {
  await refreshPickers();
  for (const kind of KINDS) {
    $(`pick-${kind}`).addEventListener('change', async (e) => {
      try {
        await bridge.selectDevice(kind, e.target.value);
        if (kind === 'camera' && capture.holders > 0) await startPreview();
        if (kind === 'microphone' && capture.holders > 0) await bridge.startMicMeter();
        showDeviceStatus('');
      } catch (err) {
        showDeviceStatus(describeError(err));
      }
    });
  }
  await listen(EVENTS.micLevel, (level) => {
    $('mic-level').value = Math.max(-60, level.rms_dbfs);
  });
  // A device plugged in or out.
  await listen(EVENTS.device, () => refreshPickers());
  $('test-tone').addEventListener('click', async () => {
    try {
      await bridge.playTestTone();
      showDeviceStatus('Played a test sound');
    } catch (err) {
      showDeviceStatus(`No sound: ${describeError(err)}`);
    }
  });
}

async function refreshPickers() {
  const { devices, selection } = await bridge.listDevices();
  for (const kind of KINDS) {
    const select = $(`pick-${kind}`);
    select.replaceChildren(...devices
      .filter((d) => d.kind === kind)
      .map((d) => new Option(d.label, d.key)));
    select.value = selection.selected[kind] ?? 'default';
  }
}

function startPreview() {
  const canvas = $('preview');
  const ctx = canvas.getContext('2d');
  return bridge.startPreview((message) => {
    const buffer = message instanceof ArrayBuffer ? message : new Uint8Array(message).buffer;
    const header = new DataView(buffer, 0, 16);
    const width = header.getUint32(0, true);
    const height = header.getUint32(4, true);
    const pixels = new Uint8ClampedArray(buffer, 16, width * height * 4);
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    ctx.putImageData(new ImageData(pixels, width, height), 0, 0);
    canvas.dataset.frames = String(Number(canvas.dataset.frames ?? 0) + 1);
    // Ask for the next frame only once this one is on screen.
    bridge.previewShown().catch(() => {});
  }, PREVIEW_SIZE);
}

/** A screen that shows the preview and the meter holds them from its enter to its leave. */
export async function holdCapture() {
  capture.holders += 1;
  if (capture.holders > 1) return;
  await startPreview().catch((err) => showDeviceStatus(describeError(err)));
  await bridge.startMicMeter().catch((err) => showDeviceStatus(describeError(err)));
}

/** Stops the preview and the meter when no screen on show holds them. */
export async function releaseCapture() {
  capture.holders -= 1;
  if (capture.holders > 0) return;
  await bridge.stopPreview().catch(() => {});
  await bridge.stopMicMeter().catch(() => {});
}
