# Unit tests for the family query policy: one or more tests for every rule.
package junction.family_test

import rego.v1

import data.junction.family

base_request := {
	"requester": {"agency_id": "la-csc", "agency_type": "childrens_social_care", "role": "social_worker"},
	"purpose": "child_protection_enquiry",
	"legal_basis": "public_task",
	"gateway": "ca1989_s47",
	"case_reference": "CP-2026-0042",
	"justification": "Bruising reported by school; s47 enquiry opened.",
	"conditions": ["art9_2_g_para18", "art10_para18"],
	"consent_not_sought_reason": "would_prejudice_protection",
	"override_reason": null,
	"break_glass": null,
	"time": "2026-06-01T10:00:00+00:00",
}

agreement := {
	"id": "dsa-school-csc",
	"version": 2,
	"parties": ["la-csc", "school-1"],
	"purposes": ["child_protection_enquiry", "child_in_need_assessment", "early_help_assessment"],
	"legal_bases": ["ca1989_s47", "ca1989_s17", "consent"],
	"fields": ["education.attendance_rate", "education.exclusions_12m", "education.sen_status"],
	"valid_from": "2025-01-01T00:00:00+00:00",
	"valid_to": null,
	"status": "active",
}

school := {
	"agency_id": "school-1",
	"agency_type": "school",
	"agreements": [agreement],
	"fields": [
		{"name": "education.attendance_rate", "sensitivity": "ordinary"},
		{"name": "education.exclusions_12m", "sensitivity": "ordinary"},
		{"name": "education.sen_status", "sensitivity": "special_category"},
	],
	"requested_fields": ["education.attendance_rate", "education.exclusions_12m", "education.sen_status"],
	"persons": [{"ref": "p1", "consents": [], "restricted_fields": []}],
}

with_request(patch) := {"request": object.union(base_request, patch), "providers": [school]}

with_provider(patch, request_patch) := {
	"request": object.union(base_request, request_patch),
	"providers": [object.union(school, patch)],
}

with_person(person, request_patch) := with_provider({"persons": [object.union({"ref": "p1", "consents": [], "restricted_fields": []}, person)]}, request_patch)

# Each part is read under its own `with`: regorus leaves the composed `decision` object
# undefined under `with` although every part of it is defined (the engines evaluate
# `decision` itself correctly with a real input; the Python suite checks that). The
# answer's agencies are expanded into one exchange per (agency, person) as
# policies/decide.py does, so the tests below read whole exchanges.
decide(inp) := {
	"submit": {"allow": allow, "reasons": reasons, "obligations": obligations},
	"agencies": agencies,
	"exchanges": expand(agencies),
} if {
	allow := family.submit_allow with input as inp
	reasons := family.submit_reasons with input as inp
	obligations := family.submit_obligations with input as inp
	agencies := family.agencies with input as inp
}

# Each person's exchange is the template their (outcome, restricted) pair names.
expand(agencies) := [exchange |
	some agency in agencies
	some person in agency.persons
	some template in agency.templates
	template.outcome == person[1]
	template.restricted == person[2]
	exchange := object.union(template.exchange, {"agency_id": agency.agency_id, "person_ref": person[0]})
]

first_exchange(inp) := decide(inp).exchanges[0]

codes(ex) := {w.field: w.code | some w in ex.withheld}

reason_codes(reasons) := {r.code | some r in reasons}

consent(state, expires) := {"purpose": "child_in_need_assessment", "agency_id": "school-1", "state": state, "expires_at": expires}

consent_request := {"purpose": "child_in_need_assessment", "legal_basis": "consent", "gateway": null}

# --- the submit check -------------------------------------------------------------------

test_complete_statutory_request_is_allowed if {
	d := decide(with_request({}))
	d.submit.allow
	reason_codes(d.submit.reasons) == {"request_permitted"}
	ex := d.exchanges[0]
	ex.allow
	ex.tier == "full"
	ex.agreement == {"id": "dsa-school-csc", "version": 2}
	ex.permitted_fields == ["education.attendance_rate", "education.exclusions_12m", "education.sen_status"]
	ex.withheld == []
	ex.retention_days == 9125
}

test_deny_by_default_with_no_input if {
	d := decide({})
	not d.submit.allow
}

test_unknown_purpose_is_refused if {
	d := decide(with_request({"purpose": "marketing"}))
	not d.submit.allow
	"unknown_purpose" in reason_codes(d.submit.reasons)
}

test_role_outside_purpose_is_refused if {
	d := decide(with_request({"requester": {"agency_id": "la-csc", "agency_type": "childrens_social_care", "role": "early_help_worker"}}))
	reason_codes(d.submit.reasons) == {"role_not_permitted"}
}

test_public_task_needs_a_gateway if {
	d := decide(with_request({"gateway": null}))
	reason_codes(d.submit.reasons) == {"gateway_required"}
}

test_unknown_gateway_is_refused if {
	d := decide(with_request({"gateway": "made_up_act"}))
	reason_codes(d.submit.reasons) == {"gateway_unknown"}
}

test_unknown_legal_basis_is_refused if {
	d := decide(with_request({"legal_basis": "legitimate_interests"}))
	"legal_basis_unknown" in reason_codes(d.submit.reasons)
}

test_gateway_must_fit_the_purpose if {
	d := decide(with_request({"gateway": "cda1998_s115"}))
	reason_codes(d.submit.reasons) == {"legal_basis_not_for_purpose"}
}

test_consent_cannot_be_the_basis_of_a_s47_enquiry if {
	d := decide(with_request({"legal_basis": "consent", "gateway": null}))
	reason_codes(d.submit.reasons) == {"legal_basis_not_for_purpose"}
}

test_case_reference_required_by_purpose if {
	d := decide(with_request({"case_reference": "  "}))
	reason_codes(d.submit.reasons) == {"case_reference_required"}
}

test_case_reference_optional_for_early_help if {
	d := decide(with_request({"purpose": "early_help_assessment", "gateway": "ca2004_s10", "case_reference": null}))
	d.submit.allow
}

test_justification_required if {
	d := decide(with_request({"justification": ""}))
	reason_codes(d.submit.reasons) == {"justification_required"}
}

test_every_failing_rule_is_listed if {
	d := decide(with_request({"justification": "", "case_reference": null, "gateway": "cda1998_s115"}))
	reason_codes(d.submit.reasons) == {"justification_required", "case_reference_required", "legal_basis_not_for_purpose"}
}

test_refused_request_withholds_every_field if {
	ex := first_exchange(with_request({"justification": ""}))
	not ex.allow
	ex.tier == "none"
	ex.permitted_fields == []
	codes(ex) == {f: "request_refused" | some f in school.requested_fields}
}

# --- agreements -------------------------------------------------------------------------

test_no_agreement_refuses_the_exchange if {
	ex := first_exchange(with_provider({"agreements": []}, {}))
	not ex.allow
	reason_codes(ex.reasons) == {"no_active_agreement"}
	codes(ex) == {f: "no_active_agreement" | some f in school.requested_fields}
}

test_agreement_not_yet_in_force if {
	ex := first_exchange(with_provider({"agreements": [object.union(agreement, {"valid_from": "2026-07-01T00:00:00+00:00"})]}, {}))
	not ex.allow
	reason_codes(ex.reasons) == {"agreement_not_yet_in_force"}
	codes(ex) == {f: "agreement_not_yet_in_force" | some f in school.requested_fields}
	ex.agreement == null
}

test_agreement_expired if {
	ex := first_exchange(with_provider({"agreements": [object.union(agreement, {"valid_to": "2026-06-01T10:00:00+00:00"})]}, {}))
	not ex.allow
	reason_codes(ex.reasons) == {"agreement_expired"}
	codes(ex) == {f: "agreement_expired" | some f in school.requested_fields}
}

test_suspended_agreement_does_not_count if {
	ex := first_exchange(with_provider({"agreements": [object.union(agreement, {"status": "suspended"})]}, {}))
	not ex.allow
	reason_codes(ex.reasons) == {"agreement_suspended"}
	codes(ex) == {f: "agreement_suspended" | some f in school.requested_fields}
	ex.agreement == null
}

test_the_reason_an_agreement_is_not_in_force_is_explained if {
	ex := first_exchange(with_provider({"agreements": [object.union(agreement, {"status": "suspended"})]}, {}))
	texts := data.catalogue.reason_codes
	[[r.code, r.text] | some r in ex.reasons] == [["agreement_suspended", texts.agreement_suspended]]
	every w in ex.withheld {
		w.text == texts.agreement_suspended
	}
}

test_draft_and_ended_agreements_are_no_agreement if {
	every status in ["draft", "ended"] {
		ex := first_exchange(with_provider({"agreements": [object.union(agreement, {"status": status})]}, {}))
		reason_codes(ex.reasons) == {"no_active_agreement"}
	}
}

test_an_agreement_for_something_else_is_no_agreement_whatever_its_state if {
	# Suspended, but for another purpose: resuming it would not cover this exchange.
	elsewhere := object.union(agreement, {"status": "suspended", "purposes": ["early_help_assessment"]})
	ex1 := first_exchange(with_provider({"agreements": [elsewhere]}, {}))
	reason_codes(ex1.reasons) == {"no_active_agreement"}
	unnamed := object.union(agreement, {"valid_to": "2026-05-01T00:00:00+00:00", "parties": ["la-other", "school-1"]})
	ex2 := first_exchange(with_provider({"agreements": [unnamed]}, {}))
	reason_codes(ex2.reasons) == {"no_active_agreement"}
	other_basis := object.union(agreement, {"valid_from": "2026-07-01T00:00:00+00:00", "legal_bases": ["consent"]})
	ex3 := first_exchange(with_provider({"agreements": [other_basis]}, {}))
	reason_codes(ex3.reasons) == {"no_active_agreement"}
}

test_an_agreement_past_its_end_is_expired_even_if_suspended if {
	# Resuming it would not help: it has to be renewed.
	lapsed := object.union(agreement, {"status": "suspended", "valid_to": "2026-05-01T00:00:00+00:00"})
	ex := first_exchange(with_provider({"agreements": [lapsed]}, {}))
	reason_codes(ex.reasons) == {"agreement_expired"}
}

test_an_agreement_not_yet_started_says_so_even_if_suspended if {
	early := object.union(agreement, {"status": "suspended", "valid_from": "2026-07-01T00:00:00+00:00"})
	ex := first_exchange(with_provider({"agreements": [early]}, {}))
	reason_codes(ex.reasons) == {"agreement_not_yet_in_force"}
}

test_suspended_outranks_not_yet_in_force_and_expired if {
	expired := object.union(agreement, {"id": "dsa-a", "valid_to": "2026-05-01T00:00:00+00:00"})
	early := object.union(agreement, {"id": "dsa-b", "valid_from": "2026-07-01T00:00:00+00:00"})
	suspended := object.union(agreement, {"id": "dsa-c", "status": "suspended"})
	ex := first_exchange(with_provider({"agreements": [expired, early, suspended]}, {}))
	reason_codes(ex.reasons) == {"agreement_suspended"}
	codes(ex) == {f: "agreement_suspended" | some f in school.requested_fields}
}

test_not_yet_in_force_outranks_expired if {
	expired := object.union(agreement, {"id": "dsa-a", "valid_to": "2026-05-01T00:00:00+00:00"})
	early := object.union(agreement, {"id": "dsa-b", "valid_from": "2026-07-01T00:00:00+00:00"})
	ex := first_exchange(with_provider({"agreements": [early, expired]}, {}))
	reason_codes(ex.reasons) == {"agreement_not_yet_in_force"}
}

test_an_agreement_in_force_wins_over_one_that_is_not if {
	suspended := object.union(agreement, {"id": "dsa-a", "status": "suspended"})
	ex := first_exchange(with_provider({"agreements": [suspended, agreement]}, {}))
	ex.allow
	ex.agreement == {"id": "dsa-school-csc", "version": 2}
}

test_break_glass_needs_no_agreement_in_force if {
	ex := first_exchange(with_provider({"agreements": [object.union(agreement, {"status": "suspended"})]}, glass))
	ex.allow
	ex.agreement == null
}

test_the_agency_type_leads_a_suspended_agreement if {
	ex := first_exchange(with_provider({"agreements": [object.union(agreement, {"status": "suspended"})], "agency_type": "dwp"}, {}))
	[r.code | some r in ex.reasons] == ["agency_type_not_in_purpose", "agreement_suspended"]
	codes(ex) == {f: "agency_type_not_in_purpose" | some f in school.requested_fields}
}

test_agreement_must_name_the_requester if {
	ex := first_exchange(with_provider({"agreements": [object.union(agreement, {"parties": ["la-other", "school-1"]})]}, {}))
	reason_codes(ex.reasons) == {"no_active_agreement"}
}

test_agreement_must_cover_the_purpose_and_basis if {
	ex1 := first_exchange(with_provider({"agreements": [object.union(agreement, {"purposes": ["early_help_assessment"]})]}, {}))
	reason_codes(ex1.reasons) == {"no_active_agreement"}
	ex2 := first_exchange(with_provider({"agreements": [object.union(agreement, {"legal_bases": ["consent"]})]}, {}))
	reason_codes(ex2.reasons) == {"no_active_agreement"}
}

test_newest_version_of_the_agreement_is_named if {
	older := object.union(agreement, {"version": 1, "fields": ["education.attendance_rate"]})
	ex := first_exchange(with_provider({"agreements": [older, agreement]}, {}))
	ex.agreement == {"id": "dsa-school-csc", "version": 2}
	ex.permitted_fields == ["education.attendance_rate", "education.exclusions_12m", "education.sen_status"]
}

# --- consent ----------------------------------------------------------------------------

test_consent_basis_with_given_consent_is_allowed if {
	ex := first_exchange(with_person({"consents": [consent("given", "2027-01-01T00:00:00+00:00")]}, consent_request))
	ex.allow
	"basis_consent_given" in reason_codes(ex.reasons)
}

test_consent_basis_without_consent_is_refused if {
	ex := first_exchange(with_person({}, consent_request))
	reason_codes(ex.reasons) == {"consent_not_sought"}
}

test_consent_basis_with_each_other_state_is_refused if {
	every state in ["withdrawn", "refused", "expired", "not_sought"] {
		ex := first_exchange(with_person({"consents": [consent(state, null)]}, consent_request))
		reason_codes(ex.reasons) == {concat("_", ["consent", state])}
	}
}

test_consent_past_its_expiry_is_expired if {
	ex := first_exchange(with_person({"consents": [consent("given", "2026-05-31T00:00:00+00:00")]}, consent_request))
	reason_codes(ex.reasons) == {"consent_expired"}
}

test_consent_for_another_agency_does_not_count if {
	other := object.union(consent("given", null), {"agency_id": "school-2"})
	ex := first_exchange(with_person({"consents": [other]}, consent_request))
	reason_codes(ex.reasons) == {"consent_not_sought"}
}

test_withdrawal_outranks_an_earlier_consent if {
	ex := first_exchange(with_person({"consents": [consent("given", null), consent("withdrawn", null)]}, consent_request))
	reason_codes(ex.reasons) == {"consent_withdrawn"}
}

gateway_cin := {"purpose": "child_in_need_assessment", "gateway": "ca1989_s17"}

test_gateway_does_not_need_consent if {
	ex := first_exchange(with_person({}, gateway_cin))
	ex.allow
	ex.obligations == []
}

test_gateway_with_refused_consent_needs_an_override if {
	ex := first_exchange(with_person({"consents": [consent("refused", null)]}, gateway_cin))
	not ex.allow
	reason_codes(ex.reasons) == {"consent_refused_no_override"}
}

test_gateway_override_is_allowed_with_an_obligation if {
	patch := object.union(gateway_cin, {"override_reason": "Risk of significant harm outweighs the refusal."})
	ex := first_exchange(with_person({"consents": [consent("withdrawn", null)]}, patch))
	ex.allow
	[o.code | some o in ex.obligations] == ["record_consent_override"]
	"consent_override_recorded" in reason_codes(ex.reasons)
}

# --- fields -----------------------------------------------------------------------------

test_field_outside_the_purpose_is_withheld if {
	ex := first_exchange(with_provider({"requested_fields": ["education.attendance_rate", "health.gp_registered"], "fields": array.concat(school.fields, [{"name": "health.gp_registered", "sensitivity": "ordinary"}])}, {}))
	ex.permitted_fields == ["education.attendance_rate"]
	codes(ex) == {"health.gp_registered": "not_in_purpose"}
}

test_field_outside_the_agreement_is_withheld if {
	ex := first_exchange(with_provider({"agreements": [object.union(agreement, {"fields": ["education.attendance_rate"]})]}, {}))
	ex.permitted_fields == ["education.attendance_rate"]
	codes(ex) == {"education.exclusions_12m": "not_in_agreement", "education.sen_status": "not_in_agreement"}
}

test_field_the_agency_does_not_offer_is_withheld if {
	ex := first_exchange(with_provider({"fields": [{"name": "education.attendance_rate", "sensitivity": "ordinary"}]}, {}))
	codes(ex) == {"education.exclusions_12m": "field_not_offered", "education.sen_status": "field_not_offered"}
}

test_field_restricted_by_the_person_is_withheld if {
	ex := first_exchange(with_person({"restricted_fields": ["education.exclusions_12m"]}, {}))
	codes(ex) == {"education.exclusions_12m": "restricted_by_person"}
}

test_special_category_needs_a_condition if {
	ex := first_exchange(with_request({"conditions": []}))
	codes(ex) == {"education.sen_status": "special_category_no_condition"}
}

test_para_18_without_consent_needs_the_reason_not_sought if {
	ex := first_exchange(with_request({"consent_not_sought_reason": null}))
	codes(ex) == {"education.sen_status": "consent_not_sought_reason_missing"}
}

test_art_9_2_h_needs_no_reason if {
	ex := first_exchange(with_request({"conditions": ["art9_2_h"], "consent_not_sought_reason": null}))
	ex.withheld == []
}

test_para_18_with_consent_needs_no_reason if {
	patch := object.union(consent_request, {"consent_not_sought_reason": null})
	ex := first_exchange(with_person({"consents": [consent("given", null)]}, patch))
	ex.withheld == []
}

test_condition_must_be_allowed_for_the_purpose if {
	ex := first_exchange(with_request({"purpose": "youth_offending_assessment", "gateway": "cda1998_s115", "requester": {"agency_id": "la-csc", "agency_type": "childrens_social_care", "role": "yot_officer"}, "conditions": ["art9_2_g_para18"]}))
	codes(ex)["education.attendance_rate"] == "no_active_agreement"
}

police := {
	"agency_id": "police-1",
	"agency_type": "police",
	"agreements": [object.union(agreement, {"id": "dsa-police", "version": 1, "parties": ["la-csc", "police-1"], "legal_bases": ["ca1989_s47", "ca2004_s10"], "fields": ["police.domestic_abuse_incidents_12m", "police.missing_episodes_12m"]})],
	"fields": [
		{"name": "police.domestic_abuse_incidents_12m", "sensitivity": "criminal_offence"},
		{"name": "police.missing_episodes_12m", "sensitivity": "ordinary"},
	],
	"requested_fields": ["police.domestic_abuse_incidents_12m", "police.missing_episodes_12m"],
	"persons": [{"ref": "p1", "consents": [], "restricted_fields": []}],
}

test_offence_data_needs_an_art_10_condition if {
	ex := decide({"request": object.union(base_request, {"conditions": ["art9_2_g_para18"]}), "providers": [police]}).exchanges[0]
	ex.permitted_fields == ["police.missing_episodes_12m"]
	codes(ex) == {"police.domestic_abuse_incidents_12m": "offence_data_no_condition"}
}

test_offence_data_with_art_10_is_released if {
	ex := decide({"request": base_request, "providers": [police]}).exchanges[0]
	ex.permitted_fields == ["police.domestic_abuse_incidents_12m", "police.missing_episodes_12m"]
}

# --- tiers and agency types -------------------------------------------------------------

test_known_to_service_tier_releases_no_facts if {
	request := object.union(base_request, {"purpose": "early_help_assessment", "gateway": "ca2004_s10"})
	ex := decide({"request": request, "providers": [police]}).exchanges[0]
	ex.allow
	ex.tier == "known_to_service"
	ex.permitted_fields == []
	codes(ex) == {f: "known_to_service_only" | some f in police.requested_fields}
}

test_agency_type_outside_the_purpose_is_refused if {
	ex := first_exchange(with_provider({"agency_type": "dwp"}, {}))
	not ex.allow
	"agency_type_not_in_purpose" in reason_codes(ex.reasons)
}

# The broker registers agencies only with the types the catalogue lists: a purpose naming
# any other type would never apply to an agency.
test_every_agency_type_a_purpose_names_is_in_the_catalogue if {
	purposes := data.catalogue.purposes
	named := {t | some p in purposes; some t, _ in p.field_allow} | {t | some p in purposes; some t, _ in p.tiers}
	{t | some t in named; not data.catalogue.agency_types[t]} == set()
}

test_nothing_permitted_is_a_deny if {
	ex := first_exchange(with_person({"restricted_fields": school.requested_fields}, {}))
	not ex.allow
	reason_codes(ex.reasons) == {"no_fields_permitted"}
}

# --- break-glass ------------------------------------------------------------------------

glass := {
	"requester": {"agency_id": "la-csc", "agency_type": "childrens_social_care", "role": "duty_social_worker"},
	"break_glass": {"reason_code": "missing_child", "text": "Child missing overnight.", "started_at": "2026-06-01T09:00:00+00:00"},
}

test_break_glass_allows_a_reduced_set_without_agreement if {
	d := decide(with_provider({"agreements": []}, glass))
	d.submit.allow
	[o.code | some o in d.submit.obligations] == ["alert_ig_immediately", "retrospective_review"]
	ex := d.exchanges[0]
	ex.allow
	ex.agreement == null
	ex.permitted_fields == ["education.attendance_rate"]
	codes(ex) == {"education.exclusions_12m": "break_glass_reduced_set", "education.sen_status": "break_glass_reduced_set"}
	[o.code | some o in ex.obligations] == ["alert_ig_immediately", "retrospective_review"]
}

test_break_glass_only_for_named_roles if {
	d := decide(with_request(object.union(glass, {"requester": base_request.requester})))
	reason_codes(d.submit.reasons) == {"break_glass_role_not_permitted"}
}

test_break_glass_needs_a_known_reason_code_and_text if {
	d := decide(with_request(object.union(glass, {"break_glass": {"reason_code": "curiosity", "text": " "}})))
	reason_codes(d.submit.reasons) == {"break_glass_reason_code_unknown", "break_glass_text_required"}
}

test_break_glass_runs_out if {
	d := decide(with_request(object.union(glass, {"break_glass": {"started_at": "2026-06-01T06:00:00+00:00"}})))
	reason_codes(d.submit.reasons) == {"break_glass_expired"}
}

test_break_glass_overrides_a_refusal_of_consent if {
	ex := first_exchange(with_person({"consents": [consent("refused", null)]}, object.union(glass, {"purpose": "child_in_need_assessment", "gateway": "ca1989_s17"})))
	ex.allow
	[o.code | some o in ex.obligations] == ["alert_ig_immediately", "retrospective_review", "record_consent_override"]
	[r.code | some r in ex.reasons] == ["basis_statutory_gateway", "break_glass_in_force", "consent_override_recorded"]
}

# --- the shape of the answer ------------------------------------------------------------

someone(ref, consents, restricted) := {"ref": ref, "consents": consents, "restricted_fields": restricted}

test_people_with_the_same_outcome_share_a_template if {
	patch := object.union(gateway_cin, {"override_reason": "Risk of significant harm outweighs the refusal."})
	people := [
		someone("a", [consent("given", null)], []),
		someone("b", [], []),
		someone("c", [consent("refused", null)], []),
		someone("d", [consent("withdrawn", null)], []),
	]
	d := decide(with_provider({"persons": people}, patch))
	[agency] := d.agencies
	agency.persons == [["a", "permit", []], ["b", "permit", []], ["c", "override", []], ["d", "override", []]]
	{[t.outcome, t.restricted] | some t in agency.templates} == {["permit", []], ["override", []]}
	count(agency.templates) == 2
	[ex.person_ref | some ex in d.exchanges] == ["a", "b", "c", "d"]
}

test_a_person_whose_restriction_bites_gets_a_template_of_their_own if {
	people := [someone("a", [], []), someone("b", [], ["education.sen_status", "education.attendance_rate"])]
	d := decide(with_provider({"persons": people}, {}))
	[agency] := d.agencies
	agency.persons == [["a", "permit", []], ["b", "permit", ["education.attendance_rate", "education.sen_status"]]]
	count(agency.templates) == 2
	b := d.exchanges[1]
	b.permitted_fields == ["education.exclusions_12m"]
	codes(b) == {"education.attendance_rate": "restricted_by_person", "education.sen_status": "restricted_by_person"}
	d.exchanges[0].withheld == []
}

test_a_restriction_of_a_field_withheld_anyway_changes_nothing if {
	narrow := object.union(agreement, {"fields": ["education.attendance_rate"]})
	d := decide(with_provider({"agreements": [narrow], "persons": [someone("a", [], ["education.sen_status"])]}, {}))
	d.agencies[0].persons == [["a", "permit", []]]
	codes(d.exchanges[0]) == {"education.exclusions_12m": "not_in_agreement", "education.sen_status": "not_in_agreement"}
}

test_a_restriction_is_not_looked_at_when_the_exchange_is_refused if {
	d := decide(with_provider({"persons": [someone("a", [consent("refused", null)], ["education.sen_status"])]}, gateway_cin))
	d.agencies[0].persons == [["a", "consent_refused_no_override", []]]
	ex := d.exchanges[0]
	not ex.allow
	codes(ex) == {f: "consent_refused_no_override" | some f in school.requested_fields}
}

test_restrictions_do_not_bite_on_known_to_service if {
	request := object.union(base_request, {"purpose": "early_help_assessment", "gateway": "ca2004_s10"})
	officer := object.union(police, {"persons": [someone("a", [], ["police.missing_episodes_12m"])]})
	d := decide({"request": request, "providers": [officer]})
	d.agencies[0].persons == [["a", "permit", []]]
	d.exchanges[0].allow
}

test_an_agency_asked_about_nobody_is_left_out if {
	d := decide({"request": base_request, "providers": [object.union(police, {"persons": []}), school]})
	[a.agency_id | some a in d.agencies] == ["school-1"]
	[[ex.agency_id, ex.person_ref] | some ex in d.exchanges] == [["school-1", "p1"]]
}

test_a_refused_request_has_one_template_per_agency if {
	d := decide({"request": object.union(base_request, {"justification": ""}), "providers": [school, police]})
	every agency in d.agencies {
		[t.outcome | some t in agency.templates] == ["request_refused"]
		agency.persons == [["p1", "request_refused", []]]
	}
	count(d.exchanges) == 2
}

test_the_refusing_code_leads_the_withheld_fields if {
	ex := first_exchange(with_provider({"agreements": [], "agency_type": "dwp"}, {}))
	[r.code | some r in ex.reasons] == ["agency_type_not_in_purpose", "no_active_agreement"]
	codes(ex) == {f: "agency_type_not_in_purpose" | some f in school.requested_fields}
	ex.agreement == null
}

# --- consent outcomes -------------------------------------------------------------------

test_on_consent_only_a_live_consent_permits if {
	outcomes := family.consent_outcome with input as with_request(consent_request)
	outcomes == {
		"given": "permit",
		"withdrawn": "consent_withdrawn",
		"expired": "consent_expired",
		"refused": "consent_refused",
		"not_sought": "consent_not_sought",
	}
}

test_on_a_gateway_a_refusal_needs_an_override if {
	without := family.consent_outcome with input as with_request(gateway_cin)
	without == {
		"given": "permit",
		"withdrawn": "consent_withdrawn_no_override",
		"expired": "permit",
		"refused": "consent_refused_no_override",
		"not_sought": "permit",
	}
	with_override := family.consent_outcome with input as with_request(object.union(gateway_cin, {"override_reason": "Risk."}))
	with_override.refused == "override"
	with_override.withdrawn == "override"
	blank_override := family.consent_outcome with input as with_request(object.union(gateway_cin, {"override_reason": "  "}))
	blank_override.refused == "consent_refused_no_override"
}

test_an_expired_consent_does_not_stop_a_gateway if {
	ex := first_exchange(with_person({"consents": [consent("given", "2026-05-31T00:00:00+00:00")]}, gateway_cin))
	ex.allow
}

test_a_refusal_outranks_an_expired_consent if {
	records := [consent("given", "2026-05-31T00:00:00+00:00"), consent("refused", null)]
	ex := first_exchange(with_person({"consents": records}, consent_request))
	reason_codes(ex.reasons) == {"consent_refused"}
}

test_a_live_consent_outranks_an_expired_one if {
	records := [consent("given", "2026-05-31T00:00:00+00:00"), consent("given", "2027-01-01T00:00:00+00:00")]
	ex := first_exchange(with_person({"consents": records}, consent_request))
	ex.allow
}

test_consent_for_another_purpose_does_not_count if {
	other := object.union(consent("given", null), {"purpose": "early_help_assessment"})
	ex := first_exchange(with_person({"consents": [other]}, consent_request))
	reason_codes(ex.reasons) == {"consent_not_sought"}
}

# --- choosing the agreement -------------------------------------------------------------

test_lowest_agreement_id_wins if {
	later := object.union(agreement, {"id": "dsa-zzz", "version": 9})
	ex := first_exchange(with_provider({"agreements": [later, agreement]}, {}))
	ex.agreement == {"id": "dsa-school-csc", "version": 2}
}

test_first_listed_wins_among_identical_versions if {
	first := object.union(agreement, {"fields": ["education.attendance_rate"]})
	ex := first_exchange(with_provider({"agreements": [first, agreement]}, {}))
	ex.permitted_fields == ["education.attendance_rate"]
}

test_agreement_ending_later_still_counts if {
	ex := first_exchange(with_provider({"agreements": [object.union(agreement, {"valid_to": "2026-06-01T10:00:01+00:00"})]}, {}))
	ex.allow
}

test_break_glass_relies_on_no_agreement if {
	# An agreement that would cover the exchange is there, but break-glass does not use it.
	ex := first_exchange(with_request(glass))
	ex.allow
	ex.agreement == null
	codes(ex) == {"education.exclusions_12m": "break_glass_reduced_set", "education.sen_status": "break_glass_reduced_set"}
}
