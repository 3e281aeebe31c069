/**
 * A QR code as inline SVG, made on the server (no script, no image request:
 * the page CSP stays `default-src 'none'`). The library only computes the
 * modules (qrcode-generator, MIT, no dependencies); the markup is ours: one
 * <path> of squares, nothing taken from the encoded text.
 */
import qrcode from 'qrcode-generator';
import { Html, escapeHtml } from './html.ts';

/** Quiet zone of 4 modules (ISO/IEC 18004 section 6.3.8). */
const QUIET_ZONE = 4;

/** `text` must be ASCII (an otpauth URI is: its parts are percent-encoded). Error correction M. */
export function qrCodeSvg(text: string, label: string): Html {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new TypeError('QR code text must be printable ASCII');
  const code = qrcode(0, 'M');
  code.addData(text, 'Byte');
  code.make();
  const count = code.getModuleCount();
  const size = count + 2 * QUIET_ZONE;
  let path = '';
  for (let row = 0; row < count; row++) {
    for (let col = 0; col < count; col++) if (code.isDark(row, col)) path += `M${col + QUIET_ZONE} ${row + QUIET_ZONE}h1v1h-1z`;
  }
  return new Html(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${size} ${size}" width="200" height="200" role="img" aria-label="${escapeHtml(label)}" shape-rendering="crispEdges"><rect width="${size}" height="${size}" fill="#fff"/><path fill="#000" d="${path}"/></svg>`,
  );
}
