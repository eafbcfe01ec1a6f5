package flow

// Test-only exports, for the tests of package flow_test.
var ParseForm = parseForm
