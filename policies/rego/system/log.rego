# Decision-log masking: what an OPA server leaves out of its decision logs.
#
# When decision logs are on, OPA asks data.system.log.mask before it writes or uploads
# each decision, with the whole log event as input (input.input is the decision's input,
# input.result its answer, input.path the rule asked, e.g. "junction/family/decision"),
# and removes every JSON pointer the rule names; a pointer to something absent is
# ignored. The event records the pointers it removed under "erased".
#
# The family policy only checks that the caseworker's free texts are filled in, but the
# texts themselves can hold personal data (a justification may name a child), and the
# people asked about are personal data however little of them the input holds. So the
# log keeps what audits the decision (who asked, by agency and job; the purpose, legal
# basis, gateway and conditions; the agreements, the fields offered and asked for; and
# the answer with every reason and obligation) and loses:
# - the request's justification, case reference, override reason and break-glass text;
# - each provider's people (their references, consent records and restrictions);
# - in the answer, whatever holds one of those texts or references: for the family
#   decision, each agency's list of people; the exchanges decided stay.
#
# Only object members are removed, never array elements: OPA removes pointers one after
# another, and removing one element of an array would move the next ones to other
# indices. The in-process engines write no decision logs and never ask this rule.
package system.log

import rego.v1

free_texts := ["justification", "case_reference", "override_reason"]

mask contains pointer if {
	some name in free_texts
	pointer := concat("/", ["", "input", "request", name])
}

mask contains "/input/request/break_glass/text"

mask contains pointer if {
	some i, _ in input.input.providers
	pointer := sprintf("/input/providers/%d/persons", [i])
}

mask contains pointer if {
	walk(input.result, [path, value])
	value in withheld
	pointer := result_pointer(path)
}

# The texts and references no part of the answer may carry into the log.
withheld contains text if {
	some name in free_texts
	text := input.input.request[name]
	is_string(text)
	trim_space(text) != ""
}

withheld contains text if {
	text := input.input.request.break_glass.text
	is_string(text)
	trim_space(text) != ""
}

withheld contains ref if {
	some provider in input.input.providers
	some person in provider.persons
	ref := person.ref
}

# The pointer to what the last object member on `path` holds (the whole answer when the
# path runs through arrays only). (rego-cpp takes no `some k, v in` in a comprehension.)
result_pointer(path) := concat("/", array.concat(["", "result"], parts)) if {
	keys := [k | step := path[k]; is_string(step)]
	keys != []
	parts := [part | some step in array.slice(path, 0, max(keys) + 1); part := sprintf("%v", [step])]
} else := "/result"
