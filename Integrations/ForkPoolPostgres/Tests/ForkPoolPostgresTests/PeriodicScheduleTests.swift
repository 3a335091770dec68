// PeriodicSchedule on its own (no database): what every(_:) and cron(_:) refuse and why, next
// ticks against hand-computed UTC dates, and a property check — for random dates the next tick
// is later, matches the expression (decomposed here with Foundation's Calendar, not the
// schedule's own arithmetic) and no matching minute lies in between (a brute-force walk).
import ForkPool
import ForkPoolPostgres
import Foundation
import Testing

@Suite(.timeLimit(.minutes(1)))
struct PeriodicScheduleTests {
    @Test func malformedCronExpressionsAreRefusedNamingFieldAndReason() {
        let cases: [(String, String)] = [
            ("", "expected 5 fields (minute hour day-of-month month day-of-week), found 0"),
            ("* * * *", "found 4"), ("* * * * * *", "found 6"),
            ("61 * * * *", "minute 61 is out of range 0–59"), ("0 24 * * *", "hour 24 is out of range 0–23"),
            ("0 0 0 * *", "day-of-month 0 is out of range 1–31"), ("0 0 * 13 *", "month 13 is out of range 1–12"),
            ("0 0 * * 8", "day-of-week 8 is out of range 0–7"), ("99999999999999999999 * * * *", "out of range"),
            ("*/0 * * * *", "minute step \"0\""), ("0 1-5/0 * * *", "hour step \"0\""),
            ("5-3 * * * *", "minute range 5-3 is reversed"), ("0 0 * DEC-JAN *", "month range DEC-JAN is reversed"),
            ("0 0 * FOO *", "month \"FOO\" is not a number or a name JAN–DEC"),
            ("0 0 * * FUN", "day-of-week \"FUN\" is not a number or a name SUN–SAT"),
            ("0 MON * * *", "hour \"MON\" is not a number"), ("a b c d e", "minute \"a\" is not a number"),
            ("1,,2 * * * *", "minute \"\" is not a number"), ("-1 * * * *", "minute \"\" is not a number"),
            ("5/15 * * * *", "needs a range or *"), ("1-2-3 * * * *", "minute \"1-2-3\" is malformed"),
            ("@fortnightly", "unknown macro @fortnightly"), ("@daily 0", "found 2"),
            ("0 0 31 4 *", "never matches"), ("0 0 30 2 *", "never matches"), ("0 0 31 2,4,6,9,11 *", "never matches"),
        ]
        for (expression, reason) in cases {
            let error = refusal { _ = try PeriodicSchedule.cron(expression) }
            #expect(error?.code == .invalidArgument, "\(expression)")
            #expect(error?.message.hasPrefix("cron \"\(expression)\": ") == true, "\(expression): \(error?.message ?? "")")
            #expect(error?.message.contains(reason) == true, "\(expression): \(error?.message ?? "")")
        }
        #expect(refusal { _ = try PeriodicSchedule.cron("61 * * * *") }?.message == "cron \"61 * * * *\": minute 61 is out of range 0–59")
    }

    @Test func intervalsBelowOneSecondOrNotWholeMillisecondsAreRefused() throws {
        for interval: Duration in [.zero, .seconds(-5), .milliseconds(999), .milliseconds(1500) + .microseconds(1), .seconds(3_155_760_001)] {
            #expect(refusal { _ = try PeriodicSchedule.every(interval) }?.code == .invalidArgument, "\(interval)")
        }
        #expect(try PeriodicSchedule.every(.seconds(1)).description == "every 1 s")
        #expect(try PeriodicSchedule.every(.milliseconds(1500)).description == "every 1500 ms")
    }

    @Test func cronTicksAgainstHandComputedDates() throws {
        let cases: [(String, Date, Date)] = [
            ("*/15 * * * *", utc(2025, 3, 10, 10, 7, 30), utc(2025, 3, 10, 10, 15)),
            ("*/15 * * * *", utc(2025, 3, 10, 10, 15), utc(2025, 3, 10, 10, 30)),  // on a tick: the next
            ("*/15 * * * *", utc(2025, 3, 10, 23, 59, 59.5), utc(2025, 3, 11)),
            ("0 0 1 1 *", utc(2025, 3, 10), utc(2026, 1, 1)),
            ("0 12 * * MON-FRI", utc(2025, 3, 14, 12), utc(2025, 3, 17, 12)),  // Friday noon → Monday
            ("0 12 * * mon-fri", utc(2025, 3, 15, 8), utc(2025, 3, 17, 12)),  // Saturday
            ("0 0 13 * FRI", utc(2024, 9, 1), utc(2024, 9, 6)),  // either day field: Friday the 6th
            ("0 0 13 * FRI", utc(2024, 9, 6), utc(2024, 9, 13)),
            ("0 0 13 * FRI", utc(2024, 10, 11), utc(2024, 10, 13)),  // Sunday the 13th
            ("0 0 */2 * MON", utc(2024, 9, 1), utc(2024, 9, 9)),  // `*/2` counts as `*`: both (Vixie)
            ("0 0 29 2 *", utc(2027, 1, 1), utc(2028, 2, 29)),
            ("0 0 29 2 *", utc(2028, 2, 29), utc(2032, 2, 29)),
            ("0 0 29 2 */7", utc(2032, 2, 29), utc(2060, 2, 29)),  // Feb 29 and a Sunday (`*/7` is 0 and 7)
            ("0 0 31 * *", utc(2025, 4, 1), utc(2025, 5, 31)),
            ("0 9 * * 7", utc(2025, 3, 10), utc(2025, 3, 16, 9)),  // 7 is Sunday
            ("30 23 31 DEC *", utc(2025, 6, 1), utc(2025, 12, 31, 23, 30)),
            ("59 23 31 12 *", utc(2025, 12, 31, 23, 58, 30), utc(2025, 12, 31, 23, 59)),  // each field's top value
            ("59 23 * * SAT", utc(2025, 3, 15, 23, 59), utc(2025, 3, 22, 23, 59)),
            ("* * * * *", utc(2025, 12, 31, 23, 59), utc(2026, 1, 1)),
            ("@hourly", utc(2025, 3, 10, 10, 7, 30), utc(2025, 3, 10, 11)),
            ("@weekly", utc(2025, 3, 16), utc(2025, 3, 23)),
            ("@monthly", utc(2025, 12, 15), utc(2026, 1, 1)),
            ("@ANNUALLY", utc(2025, 1, 1), utc(2026, 1, 1)),
            ("0 0 1 1 *", utc(1969, 12, 31, 12), utc(1970, 1, 1)),
            ("*/10 * * * *", utc(1960, 6, 30, 23, 55), utc(1960, 7, 1)),
        ]
        for (expression, date, expected) in cases {
            let tick = try PeriodicSchedule.cron(expression).nextTick(after: date)
            #expect(tick == expected, "\(expression) after \(date): \(tick), expected \(expected)")
        }
    }

    @Test func everyTicksOnMultiplesOfTheIntervalSinceTheEpoch() throws {
        let minute = try PeriodicSchedule.every(.seconds(60))
        #expect(minute.nextTick(after: Date(timeIntervalSince1970: 1_700_000_030)) == Date(timeIntervalSince1970: 1_700_000_040))
        #expect(minute.nextTick(after: Date(timeIntervalSince1970: 1_700_000_040)) == Date(timeIntervalSince1970: 1_700_000_100))
        #expect(minute.nextTick(after: Date(timeIntervalSince1970: -61)) == Date(timeIntervalSince1970: -60))
        #expect(minute.nextTick(after: Date(timeIntervalSince1970: -60)) == Date(timeIntervalSince1970: 0))
        #expect(try PeriodicSchedule.every(.seconds(3600)).nextTick(after: utc(2025, 3, 10, 10, 7, 30)) == utc(2025, 3, 10, 11))
        #expect(try PeriodicSchedule.every(.seconds(7)).nextTick(after: Date(timeIntervalSince1970: 100)) == Date(timeIntervalSince1970: 105))
        let sesquisecond = try PeriodicSchedule.every(.milliseconds(1500))
        #expect(sesquisecond.nextTick(after: Date(timeIntervalSince1970: 0)) == Date(timeIntervalSince1970: 1.5))
        #expect(sesquisecond.nextTick(after: Date(timeIntervalSince1970: 1.5)) == Date(timeIntervalSince1970: 3))
        #expect(sesquisecond.nextTick(after: Date(timeIntervalSince1970: 1_700_000_000.25)) == Date(timeIntervalSince1970: 1_700_000_001))
        var random = SplitMix64(seed: 7)
        for _ in 0..<1000 {  // strictly after, and no tick skipped
            let date = Date(timeIntervalSince1970: Double(random.next() % 3_000_000_000_000) / 1000)
            let tick = sesquisecond.nextTick(after: date)
            #expect(tick > date && tick.timeIntervalSince(date) <= 1.5 + 1e-6, "\(date) → \(tick)")
        }
    }

    @Test func descriptionsAndEquality() throws {
        #expect(try PeriodicSchedule.every(.seconds(60)).description == "every 60 s")
        #expect(try PeriodicSchedule.cron("0  */2 * *\t*").description == "cron 0 */2 * * *")
        #expect(try PeriodicSchedule.cron("@daily").description == "cron @daily")
        #expect(try PeriodicSchedule.cron("@daily") == PeriodicSchedule.cron("0 0 * * *"))
        #expect(try PeriodicSchedule.cron("0 9 * * 7") == PeriodicSchedule.cron("0 9 * * sun"))
        #expect(try PeriodicSchedule.cron("0 9 * * 0") != PeriodicSchedule.cron("0 9 * * 1"))
        #expect(try PeriodicSchedule.every(.seconds(60)) == PeriodicSchedule.every(.milliseconds(60_000)))
        #expect(try Set([PeriodicSchedule.cron("@hourly"), PeriodicSchedule.cron("0 * * * *")]).count == 1)
    }

    /// For random dates: the tick is later, matches, and no matching minute lies in between.
    @Test func nextTickIsTheFirstMatchingMinuteAfterRandomDates() throws {
        typealias Matches = (_ minute: Int, _ hour: Int, _ day: Int, _ month: Int, _ weekday: Int) -> Bool  // weekday 0 = Sunday
        // `walk` is the brute-force step: a minute, or a day for expressions that only match at 00:00.
        let cases: [(expression: String, walk: Int, samples: Int, matches: Matches)] = [
            ("*/15 * * * *", 60, 100, { m, _, _, _, _ in m % 15 == 0 }),
            ("5,35 */3 * * *", 60, 100, { m, h, _, _, _ in (m == 5 || m == 35) && h % 3 == 0 }),
            ("0 12 * * MON-FRI", 60, 40, { m, h, _, _, w in m == 0 && h == 12 && (1...5).contains(w) }),
            ("30 8 1,15 * FRI", 60, 20, { m, h, d, _, w in m == 30 && h == 8 && (d == 1 || d == 15 || w == 5) }),
            ("*/20 9-17/4 * * 0,6", 60, 40, { m, h, _, _, w in m % 20 == 0 && [9, 13, 17].contains(h) && (w == 0 || w == 6) }),
            ("0 0 */2 * MON", 86_400, 100, { m, h, d, _, w in m == 0 && h == 0 && d % 2 == 1 && w == 1 }),
            ("0 0 29 2 *", 86_400, 50, { m, h, d, mo, _ in m == 0 && h == 0 && d == 29 && mo == 2 }),
            ("@monthly", 86_400, 100, { m, h, d, _, _ in m == 0 && h == 0 && d == 1 }),
        ]
        var random = SplitMix64(seed: 2025)
        for (expression, walk, samples, matches) in cases {
            let schedule = try PeriodicSchedule.cron(expression)
            func matching(_ date: Date) -> Bool {
                let c = utcCalendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
                return c.second == 0 && matches(c.minute!, c.hour!, c.day!, c.month!, c.weekday! - 1)
            }
            for sample in 0..<samples {
                var seconds = Double(random.next() % 2_208_988_800) + 631_152_000  // 1990 to 2060
                switch sample % 3 {
                case 0: seconds -= seconds.truncatingRemainder(dividingBy: 60)  // on a minute, maybe a tick
                case 1: seconds += Double(random.next() % 1000) / 1000
                default: break
                }
                let date = Date(timeIntervalSince1970: seconds), tick = schedule.nextTick(after: date)
                #expect(tick > date && matching(tick), "\(expression) after \(date): \(tick)")
                // Every walk-aligned instant strictly between date and tick must not match.
                var probe = (seconds / Double(walk)).rounded(.down) * Double(walk) + Double(walk)
                while probe < tick.timeIntervalSince1970 {
                    if matching(Date(timeIntervalSince1970: probe)) {
                        Issue.record("\(expression) after \(date): \(tick) skips \(Date(timeIntervalSince1970: probe))")
                        break
                    }
                    probe += Double(walk)
                }
            }
        }
    }
}

private let utcCalendar: Calendar = {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    return calendar
}()

private func utc(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 0, _ minute: Int = 0, _ second: Double = 0) -> Date {
    let whole = utcCalendar.date(from: DateComponents(year: year, month: month, day: day, hour: hour, minute: minute))!
    return whole.addingTimeInterval(second)
}

private func refusal(_ body: () throws -> Void) -> ForkPoolError? {
    do {
        try body()
        return nil
    } catch {
        return error as? ForkPoolError
    }
}

/// A seeded generator, so a failure can be replayed.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
