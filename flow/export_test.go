package flow

// Test-only exports, for the tests of package flow_test.
var ParseForm = parseForm

// SubjectOf is subjectOf, for its table and fuzz tests.
var SubjectOf = subjectOf

// NetworkOf is networkOf, for its table test.
var NetworkOf = networkOf
