# Unit tests for decision-log masking: the pointers OPA removes from a logged decision.
package system.log_test

import rego.v1

import data.system.log

request := {
	"requester": {"agency_id": "la-csc", "agency_type": "childrens_social_care", "role": "social_worker"},
	"purpose": "child_protection_enquiry",
	"legal_basis": "public_task",
	"gateway": "ca1989_s47",
	"case_reference": "CP-2026-0042",
	"justification": "Bruising on Mia reported by school.",
	"conditions": [],
	"consent_not_sought_reason": null,
	"override_reason": "Mia's father refused; risk of harm.",
	"break_glass": {"reason_code": "immediate_risk", "text": "Mia missing overnight.", "started_at": "2026-06-01T09:00:00+00:00"},
	"time": "2026-06-01T10:00:00+00:00",
}

person(ref) := {"ref": ref, "consents": [], "restricted_fields": []}

decision_input := {"request": request, "providers": [
	{"agency_id": "school-1", "persons": [person("pupil-17"), person("pupil-18")]},
	{"agency_id": "police-1", "persons": []},
]}

answer := {"submit": {"allow": true}, "agencies": [{
	"agency_id": "school-1",
	"templates": [{"outcome": "proceed", "restricted": [], "exchange": {"allow": true}}],
	"persons": [["pupil-17", "proceed", []], ["pupil-18", "proceed", []]],
}]}

event := {"path": "junction/family/decision", "input": decision_input, "result": answer}

test_every_free_text_is_masked if {
	masked := log.mask with input as event
	{
		"/input/request/justification",
		"/input/request/case_reference",
		"/input/request/override_reason",
		"/input/request/break_glass/text",
	} - masked == set()
}

test_each_providers_people_are_masked if {
	masked := log.mask with input as event
	{"/input/providers/0/persons", "/input/providers/1/persons"} - masked == set()
}

test_the_people_in_the_answer_are_masked_and_the_exchanges_kept if {
	masked := log.mask with input as event
	"/result/agencies/0/persons" in masked
	every pointer in masked {
		not startswith(pointer, "/result/agencies/0/templates")
		pointer != "/result/submit"
	}
}

test_a_free_text_anywhere_in_an_answer_is_masked if {
	masked := log.mask with input as object.union(event, {"path": "junction/family", "result": {"req": request}})
	{"/result/req/justification", "/result/req/override_reason"} - masked == set()
}

test_an_answer_that_is_a_list_of_texts_is_masked_whole if {
	masked := log.mask with input as object.union(event, {"result": ["x", "pupil-18"]})
	"/result" in masked
}

test_blank_texts_leave_the_answer_alone if {
	blank := object.union(request, {"justification": "  ", "override_reason": null, "break_glass": null})
	masked := log.mask with input as {"input": {"request": blank}, "result": {"why": "  ", "note": null}}
	every pointer in masked {
		startswith(pointer, "/input/")
	}
}
