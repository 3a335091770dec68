// PeriodicSchedule: when a periodic job is due — the pure part of periodic jobs, no database.
// It owns parsing (`every(_:)`, `cron(_:)`, with errors that name the expression, the field and
// the reason) and the arithmetic of the next tick. All in UTC, on whole seconds since the Unix
// epoch with the civil-from-days algorithm (no Calendar): every host computes the same ticks.
//
//   every(60 s)        ─▶ ticks at multiples of 60 000 ms since 1970-01-01T00:00:00Z
//   cron("0 9 * * 1")  ─▶ five bit masks ─▶ nextTick: skip whole months, then days, then the
//                         first allowed hour and minute of the first matching day
import Foundation
@_spi(Integration) import ForkPool

/// When a periodic job is due: every fixed interval, or at the times a cron expression names (UTC).
///
/// Two schedules are equal when their parsed rules are: `cron("@daily") == cron("0 0 * * *")`.
public struct PeriodicSchedule: Sendable, Hashable, CustomStringConvertible {
    enum Rule: Hashable {
        case every(milliseconds: Int64)
        case cron(CronPattern)
    }

    let rule: Rule
    /// "every 60 s", "every 1500 ms", "cron 0 */2 * * *", "cron @daily".
    public let description: String

    /// Every `interval`, on multiples of it since the Unix epoch (so every host computes the same
    /// ticks). Throws `ForkPoolError(.invalidArgument, …)` unless `interval` is at least 1 second,
    /// at most 100 years and a whole number of milliseconds.
    public static func every(_ interval: Duration) throws -> PeriodicSchedule {
        let (seconds, attoseconds) = interval.components
        guard interval >= .seconds(1), interval <= .seconds(3_155_760_000) else {
            throw ForkPoolError(.invalidArgument, "every \(interval): the interval must be at least 1 second and at most 100 years")
        }
        guard attoseconds % 1_000_000_000_000_000 == 0 else {
            throw ForkPoolError(.invalidArgument, "every \(interval): the interval must be a whole number of milliseconds")
        }
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        let text = milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
        return PeriodicSchedule(rule: .every(milliseconds: milliseconds), description: "every \(text)")
    }

    /// A five-field cron expression (minute hour day-of-month month day-of-week), in UTC:
    /// `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n` and `a-b/n`, month names JAN–DEC and
    /// day names SUN–SAT (case-insensitive), day-of-week 0–7 (0 and 7 are Sunday), and the macros
    /// @hourly @daily @midnight @weekly @monthly @yearly @annually. Standard Vixie-cron rule: when
    /// both day-of-month and day-of-week are restricted (neither starts with `*`), a day matches if
    /// either matches; otherwise it must match both. Throws `ForkPoolError(.invalidArgument, …)`
    /// for a malformed expression, and for one that never matches (such as `0 0 31 4 *`).
    public static func cron(_ expression: String) throws -> PeriodicSchedule {
        let words = expression.split(whereSeparator: \.isWhitespace).map(String.init)
        do throws(CronPattern.Invalid) {
            let pattern = try CronPattern(words)
            // The Gregorian calendar repeats every 400 years (146 097 days, whole weeks), so an
            // expression that matches at all matches within any 400 years.
            guard pattern.nextMinute(from: 0, withinDays: CronPattern.fourHundredYears) != nil else {
                throw CronPattern.Invalid(reason: "never matches (no such date in the 400-year Gregorian cycle)")
            }
            return PeriodicSchedule(rule: .cron(pattern), description: "cron " + words.joined(separator: " "))
        } catch {
            throw ForkPoolError(.invalidArgument, "cron \"\(expression)\": \(error.reason)")
        }
    }

    /// The first tick strictly after `date`.
    public func nextTick(after date: Date) -> Date {
        // Whole seconds since the epoch, exactly: floor on the interval Date keeps (clamped to ±31 000 years).
        let sinceReference = min(max(date.timeIntervalSinceReferenceDate, -1e12), 1e12)
        let wholeSeconds = sinceReference.rounded(.down)
        let epochSeconds = Int64(wholeSeconds) + 978_307_200
        switch rule {
        case .every(let interval):
            let fraction = min(Int64(((sinceReference - wholeSeconds) * 1000).rounded(.down)), 999)
            let milliseconds = epochSeconds * 1000 + fraction
            var tick = (floorDivide(milliseconds, interval) + 1) * interval
            if epochDate(milliseconds: tick) <= date { tick += interval }  // rounded onto `date`
            return epochDate(milliseconds: tick)
        case .cron(let pattern):
            let minute = floorDivide(epochSeconds, 60) + 1
            let next = pattern.nextMinute(from: minute, withinDays: CronPattern.fourHundredYears)!
            return Date(timeIntervalSince1970: Double(next * 60))
        }
    }

    public static func == (a: PeriodicSchedule, b: PeriodicSchedule) -> Bool { a.rule == b.rule }
    public func hash(into hasher: inout Hasher) { hasher.combine(rule) }

    private func epochDate(milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds / 1000) + Double(milliseconds % 1000) / 1000)
    }
}

/// A parsed cron expression: one bit per allowed value of each field.
struct CronPattern: Hashable, Sendable {
    struct Invalid: Error { let reason: String }

    static let fourHundredYears: Int64 = 146_097
    var minutes: UInt64 = 0, hours: UInt64 = 0, days: UInt64 = 0, months: UInt64 = 0, weekdays: UInt64 = 0
    /// Both day fields restricted: a day matches if either matches (Vixie); else both must.
    var eitherDay = false

    private static let macros = ["@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                                 "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
                                 "@annually": "0 0 1 1 *"]
    private static let fields: [(name: String, range: ClosedRange<Int>, names: [String])] = [
        ("minute", 0...59, []), ("hour", 0...23, []), ("day-of-month", 1...31, []),
        ("month", 1...12, ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]),
        ("day-of-week", 0...7, ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]),
    ]

    init(_ words: [String]) throws(Invalid) {
        var words = words
        if words.count == 1, words[0].hasPrefix("@") {
            guard let expansion = Self.macros[words[0].lowercased()] else {
                throw Invalid(reason: "unknown macro \(words[0]) (known: @hourly @daily @midnight @weekly @monthly @yearly @annually)")
            }
            words = expansion.split(separator: " ").map(String.init)
        }
        guard words.count == 5 else {
            throw Invalid(reason: "expected 5 fields (minute hour day-of-month month day-of-week), found \(words.count)")
        }
        var masks: [UInt64] = []
        for (word, field) in zip(words, Self.fields) {
            masks.append(try Self.parse(word, field))
        }
        (minutes, hours, days, months) = (masks[0], masks[1], masks[2], masks[3])
        weekdays = masks[4] & 0x7F | (masks[4] >> 7 & 1)  // 7 is Sunday too
        eitherDay = !words[2].hasPrefix("*") && !words[4].hasPrefix("*")
    }

    /// One field: a comma-separated list of `*`, `n`, `a-b`, `*/s` and `a-b/s`.
    private static func parse(_ word: String, _ field: (name: String, range: ClosedRange<Int>, names: [String])) throws(Invalid) -> UInt64 {
        func value(_ text: Substring) throws(Invalid) -> Int {
            if !text.isEmpty, text.utf8.allSatisfy({ (48...57).contains($0) }) {
                guard let number = Int(text), field.range.contains(number) else {
                    throw Invalid(reason: "\(field.name) \(text) is out of range \(field.range.lowerBound)–\(field.range.upperBound)")
                }
                return number
            }
            if let index = field.names.firstIndex(of: text.uppercased()) { return field.range.lowerBound + index }
            let names = field.names.isEmpty ? "" : " or a name \(field.names.first!)–\(field.names.last!)"
            throw Invalid(reason: "\(field.name) \"\(text)\" is not a number\(names)")
        }
        var mask: UInt64 = 0
        for item in word.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            let ends = parts[0].split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count <= 2, ends.count <= 2 else { throw Invalid(reason: "\(field.name) \"\(item)\" is malformed") }
            var step = 1
            if parts.count == 2 {
                guard parts[1].utf8.allSatisfy({ (48...57).contains($0) }), let number = Int(parts[1]), number >= 1 else {
                    throw Invalid(reason: "\(field.name) step \"\(parts[1])\" in \"\(item)\" must be a whole number of at least 1")
                }
                guard parts[0] == "*" || ends.count == 2 else {
                    throw Invalid(reason: "\(field.name) step \"\(item)\" needs a range or *, as in */\(number) or a-b/\(number)")
                }
                step = number
            }
            var bounds = field.range
            if parts[0] != "*" {
                let low = try value(ends[0]), high = ends.count == 2 ? try value(ends[1]) : low
                guard low <= high else { throw Invalid(reason: "\(field.name) range \(parts[0]) is reversed (\(low) > \(high))") }
                bounds = low...high
            }
            for bit in stride(from: bounds.lowerBound, through: bounds.upperBound, by: step) { mask |= 1 << bit }
        }
        return mask
    }

    /// The first matching minute (since the epoch) at or after `start`, looking at most `limit`
    /// days ahead: months not allowed are skipped whole, then days, then hours by bit scan.
    func nextMinute(from start: Int64, withinDays limit: Int64) -> Int64? {
        var day = floorDivide(start, 1440), firstMinute = Int(start - day * 1440)
        let lastDay = day + limit
        while day <= lastDay {
            let (year, month, dayOfMonth) = civilDate(days: day)
            if months >> month & 1 == 0 {
                day = month == 12 ? daysFromCivil(year + 1, 1, 1) : daysFromCivil(year, month + 1, 1)
            } else {
                let weekday = Int(day + 4 - floorDivide(day + 4, 7) * 7)  // 1970-01-01 was a Thursday
                let byDate = days >> dayOfMonth & 1 == 1, byWeekday = weekdays >> weekday & 1 == 1
                if eitherDay ? (byDate || byWeekday) : (byDate && byWeekday), let minute = firstTime(from: firstMinute) {
                    return day * 1440 + Int64(minute)
                }
                day += 1
            }
            firstMinute = 0
        }
        return nil
    }

    /// The first allowed minute of a day at or after `minuteOfDay`, if any.
    private func firstTime(from minuteOfDay: Int) -> Int? {
        let hour = minuteOfDay / 60
        if hours >> hour & 1 == 1, let minute = Self.lowestBit(minutes, atLeast: minuteOfDay % 60) { return hour * 60 + minute }
        guard let later = Self.lowestBit(hours, atLeast: hour + 1) else { return nil }
        return later * 60 + minutes.trailingZeroBitCount
    }

    private static func lowestBit(_ mask: UInt64, atLeast bit: Int) -> Int? {
        let rest = bit < 64 ? mask & (~0 << bit) : 0
        return rest == 0 ? nil : rest.trailingZeroBitCount
    }
}

/// Division rounding toward negative infinity (dates before 1970 too).
private func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
    let quotient = a / b
    return a % b != 0 && (a < 0) != (b < 0) ? quotient - 1 : quotient
}

/// Year, month (1–12) and day (1–31) of a day number since 1970-01-01 (Hinnant's civil_from_days).
private func civilDate(days: Int64) -> (year: Int64, month: Int, day: Int) {
    let z = days + 719_468
    let era = floorDivide(z, 146_097), dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let shiftedMonth = (5 * dayOfYear + 2) / 153  // March is 0
    let month = Int(shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9)
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, Int(dayOfYear - (153 * shiftedMonth + 2) / 5 + 1))
}

/// The day number since 1970-01-01 of a civil date (Hinnant's days_from_civil).
private func daysFromCivil(_ year: Int64, _ month: Int, _ day: Int) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = floorDivide(y, 400), yearOfEra = y - era * 400
    let dayOfYear = Int64((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1)
    return era * 146_097 + yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear - 719_468
}
