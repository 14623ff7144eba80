// The call screen's icons: a few strokes each, drawn as inline SVG in the text colour, so the
// page needs no icon font or image files and the icons follow the light and dark themes.

const PATHS = {
  mic: ['M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z', 'M5 11a7 7 0 0 0 14 0', 'M12 18v3'],
  'mic-off': ['M9 9v3a3 3 0 0 0 5.1 2.1', 'M15 10V6a3 3 0 0 0-5.7-1.3', 'M5 11a7 7 0 0 0 11.5 5.3', 'M19 11a7 7 0 0 1-.6 2.8', 'M12 18v3', 'M4 4l16 16'],
  camera: ['M4 7h9a2 2 0 0 1 2 2v6a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V9a2 2 0 0 1 2-2z', 'M15 11l6-3v8l-6-3z'],
  'camera-off': ['M8 7h5a2 2 0 0 1 2 2v4', 'M15 11l6-3v8l-6-3', 'M13 17H4a2 2 0 0 1-2-2V9a2 2 0 0 1 2-2', 'M3 3l18 18'],
  devices: ['M4 7h10', 'M18 7h2', 'M4 17h4', 'M12 17h8', 'M16 5v4', 'M10 15v4'],
  speaker: ['M3 4h18v12H3z', 'M8 20h8', 'M5 18h3'],
  grid: ['M3 4h8v7H3z', 'M13 4h8v7h-8z', 'M3 13h8v7H3z', 'M13 13h8v7h-8z'],
  stats: ['M5 20V11', 'M12 20V4', 'M19 20v-7'],
  people: ['M9 11a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7z', 'M2.5 20a6.5 6.5 0 0 1 13 0', 'M16 4.3a3.5 3.5 0 0 1 0 6.4', 'M18 14.5a6.5 6.5 0 0 1 3.5 5.5'],
  share: ['M3 5h18v11H3z', 'M8 20h8', 'M12 16v4', 'M12 13V8', 'M9.5 10.5L12 8l2.5 2.5'],
  'share-stop': ['M3 5h18v11H3z', 'M8 20h8', 'M12 16v4', 'M9.5 8.5l5 5', 'M14.5 8.5l-5 5'],
  pin: ['M9 3h6', 'M10 3v6l-3 4h10l-3-4V3', 'M12 13v8'],
};

const SVG = 'http://www.w3.org/2000/svg';

/** An `<svg class="icon">` for `name`, hidden from assistive technology (buttons carry labels). */
export function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.dataset.icon = name;
  for (const d of PATHS[name]) {
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

/** Puts icon `name` in `el` in place of the one it has (no work when it is the same). */
export function setIcon(el, name) {
  const current = el.querySelector('svg.icon');
  if (current?.dataset.icon === name) return;
  if (current) current.replaceWith(icon(name));
  else el.prepend(icon(name));
}
