import ClmntCore
import ClmntHealth
import Foundation

/// The page's HTML, rendered on the server: complete without JavaScript. The same card and
/// summary renderers feed the SSE events, so a live update looks exactly like a reload.
enum PageRenderer {
    static func page(fleet: FleetSnapshot, backups: BackupsSnapshot, now: Date) -> String {
        var html = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark">
        <title>clmnt fleet dashboard</title>
        <link rel="stylesheet" href="/assets/dashboard.css">
        <script src="/assets/dashboard.js" defer></script>
        </head>
        <body>
        <header class="top"><h1>Claw Mountain fleet</h1><p class="base">\(escape(fleet.baseDir))</p></header>

        """
        html += summary(fleet) + "\n"
        if let problem = fleet.problem { html += "<p class=\"problem\" role=\"alert\">\(escape(problem))</p>\n" }
        html += "<main id=\"molts\" class=\"grid\">\n"
        if fleet.molts.isEmpty && fleet.problem == nil { html += "<p class=\"empty\">No molts in this base dir.</p>\n" }
        for molt in fleet.molts { html += card(molt, now: now) + "\n" }
        html += "</main>\n"
        html += backupsSection(backups, now: now)
        html += """
        <footer>Rendered \(escape(Timestamp.format(now))) · <span class="live">live updates <span class="live-on">on</span><span class="live-off">off</span></span> · <a href="/api/molts">JSON</a> · <a href="/metrics">metrics</a></footer>
        </body>
        </html>

        """
        return html
    }

    /// `3 healthy · 1 failing · ...`: counts by badge, each with its colour and its word.
    static func summary(_ fleet: FleetSnapshot) -> String {
        var counts: [Badge: Int] = [:]
        for molt in fleet.molts { counts[molt.badge, default: 0] += 1 }
        let parts: [(Badge, String)] = [(.green, "healthy"), (.red, "failing"), (.amber, "degraded"), (.grey, "stopped or unknown")]
        var html = "<section id=\"summary\" class=\"summary\" aria-label=\"Fleet summary\">"
        for (badge, word) in parts {
            html += "<span class=\"pill pill-\(badge.rawValue)\" data-count=\"\(badge.rawValue)\"><b>\(counts[badge] ?? 0)</b> \(word)</span>"
        }
        html += "<span class=\"total\">\(fleet.molts.count) molt\(fleet.molts.count == 1 ? "" : "s")</span></section>"
        return html
    }

    static func badgeText(_ status: HealthStatus?) -> String {
        guard let status else { return "Not checked" }
        return status.rawValue.prefix(1).uppercased() + status.rawValue.dropFirst()
    }

    static func card(_ molt: MoltSnapshot, now: Date) -> String {
        let name = escape(molt.molt.name)
        let last = molt.last
        var html = "<article class=\"card\" id=\"molt-\(name)\" data-molt=\"\(name)\" data-badge=\"\(molt.badge.rawValue)\">"
        html += "<div class=\"card-head\"><h2>\(name)</h2>"
        html += "<span class=\"badge badge-\(molt.badge.rawValue)\"><span class=\"dot\" aria-hidden=\"true\"></span>"
        html += "\(badgeText(last?.status))</span></div><dl>"
        html += "<div><dt>Port</dt><dd>\(molt.molt.port.map(String.init) ?? "none")</dd></div>"
        if let last {
            let iso = Timestamp.format(last.timestamp)
            html += "<div><dt>Last check</dt><dd><time datetime=\"\(iso)\" data-ago title=\"\(iso)\">checked \(ago(last.timestamp, now: now))</time></dd></div>"
        } else {
            html += "<div><dt>Last check</dt><dd>never</dd></div>"
        }
        html += "<div><dt>Uptime 24 h</dt><dd>\(molt.uptime24h.map { "\(tenths($0))%" } ?? "no checks")</dd></div>"
        html += "<div><dt>Response</dt><dd>\(last?.responseTimeMs.map { "\(tenths($0)) ms" } ?? "none")</dd></div>"
        html += "</dl>" + sparkline(molt.history.recent.suffix(40))
        if let detail = last?.detail, molt.badge != .green { html += "<p class=\"detail\">\(escape(detail))</p>" }
        return html + "</article>"
    }

    /// Response times of the last checks as an SVG polyline; a failed check is a red tick on the baseline.
    static func sparkline(_ records: ArraySlice<HealthRecord>) -> String {
        let width = 160.0, height = 32.0
        let times = records.compactMap(\.responseTimeMs)
        guard records.count >= 2, let top = times.max() else {
            return "<p class=\"spark-none\">No response times yet</p>"
        }
        let scale = top > 0 ? (height - 4) / top : 0
        let step = width / Double(records.count - 1)
        var points: [String] = [], failures = ""
        for (index, record) in records.enumerated() {
            let x = Double(index) * step
            if let time = record.responseTimeMs, record.status.isHealthy {
                points.append("\(tenths(x)),\(tenths(height - 2 - time * scale))")
            } else {
                failures += "<line class=\"spark-fail\" x1=\"\(tenths(x))\" y1=\"\(tenths(height))\" x2=\"\(tenths(x))\" y2=\"\(tenths(height - 8))\"/>"
            }
        }
        let low = times.min() ?? 0
        let label = "Response times of the last \(records.count) checks: \(tenths(low)) to \(tenths(top)) ms"
        return "<svg class=\"spark\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"\(label)\">"
            + "<title>\(label)</title><polyline points=\"\(points.joined(separator: " "))\"/>\(failures)</svg>"
    }

    static func backupsSection(_ backups: BackupsSnapshot, now: Date) -> String {
        var html = "<section class=\"backups\" aria-labelledby=\"backups-title\"><h2 id=\"backups-title\">Backups</h2>"
        if let time = backups.schedule.timeFields {
            html += "<p class=\"schedule\">Scheduled in root's crontab: <code>\(escape(time))</code> into <code>\(escape(backups.backupDir))</code></p>"
        } else {
            html += "<p class=\"schedule\">No backup scheduled for this base dir (<code>clmnt fleet schedule</code>). Archives in <code>\(escape(backups.backupDir))</code>.</p>"
        }
        if let problem = backups.problem { html += "<p class=\"problem\">\(escape(problem))</p>" }
        if let problem = backups.schedule.problem { html += "<p class=\"problem\">\(escape(problem))</p>" }
        guard !backups.listings.isEmpty else { return html + "<p class=\"empty\">No archives yet.</p></section>\n" }
        html += "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Archive</th><th scope=\"col\">Date</th><th scope=\"col\">Age</th>"
        html += "<th scope=\"col\">Size</th><th scope=\"col\">Molts</th><th scope=\"col\">State</th></tr></thead><tbody>"
        // Newest first; unreadable files (no date) at the end.
        for listing in Array(backups.listings.filter { $0.date != nil }.reversed()) + backups.listings.filter({ $0.date == nil }) {
            let file = (listing.file as NSString).lastPathComponent
            let date = listing.date.flatMap(Timestamp.parse)
            let state: String
            if let reason = listing.unreadable {
                state = "<span class=\"tag tag-red\">unreadable</span> <span class=\"reason\">\(escape(reason))</span>"
            } else if listing.complete == false {
                let missed = listing.missedFiles.map { " <span class=\"reason\">\($0) file\($0 == 1 ? "" : "s") missed</span>" } ?? ""
                state = "<span class=\"tag tag-amber\">incomplete</span>" + missed
            } else if listing.complete == true {
                state = "<span class=\"tag tag-green\">complete</span>"
            } else {
                state = "<span class=\"tag tag-grey\">not marked</span>"
            }
            html += "<tr><td><code>\(escape(file))</code></td><td>\(escape(listing.date ?? "-"))</td>"
            html += "<td>\(date.map { ago($0, now: now) } ?? "-")</td><td>\(formatBytes(listing.sizeBytes))</td>"
            html += "<td title=\"\(escape((listing.molts ?? []).joined(separator: ", ")))\">\(listing.moltCount.map(String.init) ?? "-")</td><td>\(state)</td></tr>"
        }
        return html + "</tbody></table></div></section>\n"
    }

    /// `12.3`: one decimal, rounded half away from zero, without `String(format:)`, whose format
    /// parsing was most of a page's rendering time (the sparklines print hundreds of numbers).
    static func tenths(_ value: Double) -> String {
        guard value.isFinite, abs(value) < 1e15 else { return String(value) }
        let scaled = Int((value * 10).rounded())
        return "\(scaled < 0 ? "-" : "")\(scaled.magnitude / 10).\(scaled.magnitude % 10)"
    }

    /// `45 s ago`, `3 min ago`, `2 h ago`, `4 d ago` (the script updates these in place).
    static func ago(_ date: Date, now: Date) -> String {
        let seconds = max(0, Int(now.timeIntervalSince(date)))
        if seconds < 60 { return "\(seconds) s ago" }
        if seconds < 3600 { return "\(seconds / 60) min ago" }
        if seconds < 86_400 { return "\(seconds / 3600) h ago" }
        return "\(seconds / 86_400) d ago"
    }

    static func escape(_ text: String) -> String { MarkupText.escaped(text) }
}
