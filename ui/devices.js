// Devices: the camera, microphone and speaker pickers (kept current as devices come and go),
// the camera preview (raw frames over a channel) and the microphone meter, and the test sound.
import * as bridge from './bridge.js';
import { EVENTS, describeError, listen } from './bridge.js';
import { $ } from './dom.js';

const KINDS = ['camera', 'microphone', 'speaker'];
const PREVIEW_SIZE = { width: 320, height: 180, fps: 30 };

// The screens holding the preview and the meter (lobby, call): they run while any does. The
// router enters the next screen before leaving the last, so they run on from lobby to call.
const captureHolders = new Set();

const showDeviceStatus = (text) => { $('devices-status').textContent = text; };

/** Lists the devices and binds the pickers, the test sound and the device events (a start-up step). */
export async function setup() {
  await refreshPickers();
  for (const kind of KINDS) {
    $(`pick-${kind}`).addEventListener('change', async (e) => {
      try {
        await bridge.selectDevice(kind, e.target.value);
        if (kind === 'camera' && captureHolders.size > 0) await startPreview();
        if (kind === 'microphone' && captureHolders.size > 0) await bridge.startMicMeter();
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

/** Fills the lobby's pickers and the call's (the same list, the same selection). */
export async function refreshPickers() {
  const { devices, selection } = await bridge.listDevices();
  for (const kind of KINDS) {
    for (const select of [$(`pick-${kind}`), $(`call-${kind}`)]) {
      if (!select) continue;
      select.replaceChildren(...devices
        .filter((d) => d.kind === kind)
        .map((d) => new Option(d.label, d.key)));
      select.value = selection.selected[kind] ?? 'default';
    }
  }
}

/** Starts the preview again (the camera changed during a call) if a screen shows it. */
export async function restartPreview() {
  if (captureHolders.size > 0) await startPreview().catch((err) => showDeviceStatus(describeError(err)));
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

/** Screen `holder` shows the preview and the meter from its enter to its leave. */
export async function holdCapture(holder) {
  const running = captureHolders.size > 0;
  captureHolders.add(holder);
  if (running) return;
  await startPreview().catch((err) => showDeviceStatus(describeError(err)));
  await bridge.startMicMeter().catch((err) => showDeviceStatus(describeError(err)));
}

/** Stops the preview and the meter once no screen holds them. */
export async function releaseCapture(holder) {
  captureHolders.delete(holder);
  if (captureHolders.size > 0) return;
  await bridge.stopPreview().catch(() => {});
  await bridge.stopMicMeter().catch(() => {});
}
