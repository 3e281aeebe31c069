/**
 * The pages' one stylesheet, served from /assets/portcullis.css so the CSP
 * can forbid inline styles. Plain, readable, high-contrast (WCAG AA: body
 * text #1a1a1a on #ffffff is 17:1, links #0b4f9c 8.6:1), visible focus.
 */
export const STYLESHEET = `
:root { color-scheme: light; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.5; color: #1a1a1a; background: #f4f5f7; }
body { margin: 0; }
main { max-width: 40rem; margin: 3rem auto; padding: 2rem; background: #ffffff; border: 1px solid #d0d4da; border-radius: 8px; }
h1 { font-size: 1.5rem; margin-top: 0; }
h2 { font-size: 1.15rem; margin-top: 2rem; }
label { display: block; font-weight: 600; margin: 1rem 0 0.25rem; }
input[type=email], input[type=password], input[type=text] { width: 100%; box-sizing: border-box; padding: 0.6rem; font-size: 1rem; border: 1px solid #6b7280; border-radius: 4px; }
button { margin-top: 1.25rem; padding: 0.6rem 1.2rem; font-size: 1rem; font-weight: 600; color: #ffffff; background: #0b4f9c; border: 0; border-radius: 4px; cursor: pointer; }
button.secondary { color: #0b4f9c; background: #ffffff; border: 1px solid #0b4f9c; }
button.small { margin-top: 0; padding: 0.3rem 0.8rem; font-size: 0.9rem; }
a { color: #0b4f9c; }
:focus-visible { outline: 3px solid #c2410c; outline-offset: 2px; }
.error { padding: 0.75rem 1rem; color: #7f1d1d; background: #fef2f2; border: 1px solid #b91c1c; border-radius: 4px; }
.notice { padding: 0.75rem 1rem; color: #14532d; background: #f0fdf4; border: 1px solid #15803d; border-radius: 4px; }
table { width: 100%; border-collapse: collapse; margin-top: 0.5rem; }
th, td { text-align: left; padding: 0.5rem 0.25rem; border-bottom: 1px solid #d0d4da; vertical-align: middle; }
.current { font-weight: 600; color: #14532d; }
.hint { color: #4b5563; font-size: 0.9rem; }
form.inline { display: inline; }
`;
