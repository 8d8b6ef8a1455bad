import Testing
@testable import ClmntCore
@Test func placeholderCore() { #expect(MoltName.isValid("a1")) }
