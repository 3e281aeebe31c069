/** Shows a service URL without its password: for messages, logs and `config check`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '****';
    return parsed.toString();
  } catch {
    return '<unparseable URL>';
  }
}
