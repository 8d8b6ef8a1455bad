import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// ISO-8601 UTC timestamps (`2026-11-28T10:05:00Z`), as the state files, `--json` and log lines hold them.
/// Hand-written because `ISO8601DateFormatter` costs milliseconds to set up, and
/// `health-watch` runs every few minutes for every molt.
public enum Timestamp {
    /// `2026-11-28T10:05:00Z` (whole seconds, UTC).
    public static func format(_ date: Date) -> String {
        let parts = utcParts(date)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ",
                      parts.year, parts.month, parts.day, parts.hour, parts.minute, parts.second)
    }

    /// `20261128T100500Z`, for identifiers.
    public static func compact(_ date: Date) -> String {
        let parts = utcParts(date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ",
                      parts.year, parts.month, parts.day, parts.hour, parts.minute, parts.second)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS` with optional fraction and `Z` or `±HH:MM` (or `±HHMM`); nil otherwise.
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 19 else { return nil }
        func number(_ start: Int, _ length: Int) -> Int? {
            var value = 0
            for index in start..<(start + length) {
                let byte = bytes[index]
                guard byte >= 48 && byte <= 57 else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        guard bytes[4] == 45, bytes[7] == 45, bytes[10] == 84 || bytes[10] == 32 || bytes[10] == 116,
              bytes[13] == 58, bytes[16] == 58,
              let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60
        else { return nil }
        var index = 19
        var fraction = 0.0
        if index < bytes.count, bytes[index] == 46 {
            index += 1
            var scale = 0.1
            let start = index
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                fraction += Double(bytes[index] - 48) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        var offsetSeconds = 0
        if index < bytes.count {
            let sign = bytes[index]
            if sign == 90 || sign == 122 {
                index += 1
            } else if sign == 43 || sign == 45 {
                let rest = bytes.count - index - 1
                let hours: Int?, minutes: Int?
                if rest == 5, bytes[index + 3] == 58 {
                    hours = number(index + 1, 2); minutes = number(index + 4, 2)
                } else if rest == 4 {
                    hours = number(index + 1, 2); minutes = number(index + 3, 2)
                } else if rest == 2 {
                    hours = number(index + 1, 2); minutes = 0
                } else {
                    return nil
                }
                guard let hours, let minutes else { return nil }
                offsetSeconds = (hours * 3600 + minutes * 60) * (sign == 45 ? -1 : 1)
                index = bytes.count
            } else {
                return nil
            }
        }
        guard index == bytes.count else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        return Date(timeIntervalSince1970: Double(seconds - offsetSeconds) + fraction)
    }

    /// `1h 05m`, `3m 20s`, `2d 4h`: a duration as an admin reads it.
    public static func duration(_ interval: TimeInterval) -> String {
        let total = max(0, Int(interval.rounded()))
        let days = total / 86400, hours = (total % 86400) / 3600, minutes = (total % 3600) / 60, seconds = total % 60
        if days > 0 { return "\(days)d \(hours)h" }
        if hours > 0 { return String(format: "%dh %02dm", hours, minutes) }
        if minutes > 0 { return String(format: "%dm %02ds", minutes, seconds) }
        return "\(seconds)s"
    }

    /// `2026-11-29`, local time: the date in default archive names.
    static func day(_ date: Date) -> String {
        let parts = localParts(date)
        return String(format: "%04d-%02d-%02d", parts.year, parts.month, parts.day)
    }

    /// `name` with the date placeholders of `-o` replaced, local time like the default
    /// name: `YYYY`, `MM`, `DD` and `HHMMSS` (time of day), each only as a word of its
    /// own (not inside other letters: `ADDRESS` stays). `fleet-YYYY-MM-DD.tar.gz` →
    /// `fleet-2026-12-07.tar.gz`, so a nightly job's `-o` names each night's archive.
    public static func expandingDatePlaceholders(in name: String, _ date: Date) -> String {
        let parts = localParts(date)
        let values = ["YYYY": String(format: "%04d", parts.year), "MM": String(format: "%02d", parts.month),
                      "DD": String(format: "%02d", parts.day), "HHMMSS": timeOfDay(date)]
        var result = "", word = ""
        func flush() {
            result += values[word] ?? word
            word = ""
        }
        for character in name {
            if character.isLetter { word.append(character) } else {
                flush()
                result.append(character)
            }
        }
        flush()
        return result
    }

    /// `031500`, local time: added to an archive name when today's exists.
    public static func timeOfDay(_ date: Date) -> String {
        let parts = localParts(date)
        return String(format: "%02d%02d%02d", parts.hour, parts.minute, parts.second)
    }

    private static func localParts(_ date: Date) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        localtime_r(&seconds, &parts)
        return (Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    private static func utcParts(_ date: Date) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return (Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }
}

extension Timestamp {
    /// `Sat, 28 Nov 2026 10:05:00 +0000`: the `Date:` header of a mail (RFC 5322).
    public static func rfc5322(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return String(format: "%@, %02d %@ %04d %02d:%02d:%02d +0000", days[Int(parts.tm_wday)], Int(parts.tm_mday),
                      months[Int(parts.tm_mon)], Int(parts.tm_year) + 1900, Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }
}
