/// The page's style sheet and script, compiled into the binary (no files to install, no Node build).
enum PageAssets {
    /// Only our own files and the event stream; no inline script, no other origin.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static let css = """
    :root {
      --bg: #f6f8fa; --fg: #1f2328; --muted: #59636e; --card: #ffffff; --line: #d1d9e0;
      --green: #1a7f37; --red: #cf222e; --amber: #9a6700; --grey: #6e7781; --badge-fg: #ffffff;
      font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color-scheme: light dark;
    }
    @media (prefers-color-scheme: dark) {
      :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --card: #151b23; --line: #3d444d;
              --green: #238636; --red: #da3633; --amber: #9e6a03; --grey: #656c76; }
    }
    * { box-sizing: border-box; }
    body { margin: 0; padding: 1rem 1.25rem 2rem; background: var(--bg); color: var(--fg); line-height: 1.4; }
    h1 { font-size: 1.4rem; margin: 0; }
    .top { display: flex; flex-wrap: wrap; align-items: baseline; gap: .25rem 1rem; margin-bottom: .75rem; }
    .base { margin: 0; color: var(--muted); font-family: ui-monospace, monospace; font-size: .85rem; }
    .summary { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: 0 0 1rem; }
    .pill { border-radius: 999px; padding: .2rem .7rem; color: var(--badge-fg); font-size: .9rem; }
    .pill-green, .badge-green, .tag-green { background: var(--green); }
    .pill-red, .badge-red, .tag-red { background: var(--red); }
    .pill-amber, .badge-amber, .tag-amber { background: var(--amber); }
    .pill-grey, .badge-grey, .tag-grey { background: var(--grey); }
    .total { color: var(--muted); }
    .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: .9rem; }
    .card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: .8rem .9rem; }
    .card[data-badge="red"] { border-left: 5px solid var(--red); }
    .card[data-badge="amber"] { border-left: 5px solid var(--amber); }
    .card-head { display: flex; justify-content: space-between; align-items: center; gap: .5rem; }
    .card h2 { font-size: 1.05rem; margin: 0; overflow-wrap: anywhere; }
    .badge { display: inline-flex; align-items: center; gap: .35rem; border-radius: 999px; padding: .15rem .6rem;
             color: var(--badge-fg); font-weight: 600; font-size: .85rem; white-space: nowrap; }
    .dot { width: .55rem; height: .55rem; border-radius: 50%; background: var(--badge-fg); }
    dl { display: grid; grid-template-columns: 1fr 1fr; gap: .3rem .8rem; margin: .7rem 0 .5rem; }
    dl div { min-width: 0; }
    dt { color: var(--muted); font-size: .75rem; text-transform: uppercase; letter-spacing: .03em; }
    dd { margin: 0; font-variant-numeric: tabular-nums; }
    .spark { width: 100%; height: 32px; display: block; }
    .spark polyline { fill: none; stroke: var(--green); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
    .spark-fail { stroke: var(--red); stroke-width: 2; vector-effect: non-scaling-stroke; }
    .spark-none { color: var(--muted); font-size: .8rem; margin: .3rem 0 0; }
    .detail { color: var(--muted); font-size: .85rem; margin: .4rem 0 0; overflow-wrap: anywhere; }
    .backups { margin-top: 1.75rem; }
    .backups h2 { font-size: 1.15rem; margin: 0 0 .4rem; }
    .schedule { color: var(--muted); margin: 0 0 .6rem; }
    .table-wrap { overflow-x: auto; }
    table { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line); }
    th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); font-size: .9rem; }
    td { font-variant-numeric: tabular-nums; }
    .tag { color: var(--badge-fg); border-radius: 4px; padding: .05rem .4rem; font-size: .8rem; }
    .reason { color: var(--muted); font-size: .8rem; }
    .problem { color: var(--red); font-weight: 600; }
    .empty { color: var(--muted); }
    code { font-family: ui-monospace, monospace; font-size: .85em; }
    footer { margin-top: 1.5rem; color: var(--muted); font-size: .8rem; }
    a { color: inherit; }
    .live-on { display: none; }
    body[data-live="on"] .live-on { display: inline; }
    body[data-live="on"] .live-off { display: none; }
    @media (max-width: 600px) {
      body { padding: .75rem; }
      .grid { grid-template-columns: 1fr; }
    }
    """

    static let script = """
    "use strict";
    (() => {
      const ago = (iso) => {
        const s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
        if (s < 60) return s + " s ago";
        if (s < 3600) return Math.floor(s / 60) + " min ago";
        if (s < 86400) return Math.floor(s / 3600) + " h ago";
        return Math.floor(s / 86400) + " d ago";
      };
      const tick = () => document.querySelectorAll("time[data-ago]").forEach((t) => { t.textContent = "checked " + ago(t.dateTime); });
      setInterval(tick, 30000);
      const fragment = (html) => {
        const template = document.createElement("template");
        template.innerHTML = html.trim();
        return template.content.firstElementChild;
      };
      if (!("EventSource" in window)) return;
      const events = new EventSource("/api/events");
      events.onopen = () => { document.body.dataset.live = "on"; };
      events.onerror = () => { document.body.dataset.live = "off"; };
      events.addEventListener("molt", (event) => {
        const data = JSON.parse(event.data);
        const card = fragment(data.card_html);
        const old = document.getElementById("molt-" + data.name);
        if (old) old.replaceWith(card); else document.getElementById("molts").append(card);
        const summary = document.getElementById("summary");
        if (summary) summary.replaceWith(fragment(data.summary_html));
        document.body.dataset.live = "on";
      });
    })();
    """
}
