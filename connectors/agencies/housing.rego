# Local policy of the housing service: what it will not release, whatever the broker decided.
# Input and decision shapes: connectors/local_policy.py and docs/agency-guide.md.
package junction.local.housing

import rego.v1

accepted_purposes := {
	"early_help_assessment",
	"child_in_need_assessment",
	"child_protection_enquiry",
	"youth_offending_assessment",
}

request contains refusal if {
	not input.purpose in accepted_purposes
	refusal := {
		"scope": "purpose",
		"code": "purpose-not-accepted",
		"reason": sprintf("housing does not share for %s", [input.purpose]),
	}
}

# A tenancy flagged as a domestic abuse refuge is never disclosed.
persons contains refusal if {
	some person in input.persons
	"refuge" in person.flags
	refusal := {
		"ref": person.ref,
		"code": "refuge-protected",
		"reason": "the address is a domestic abuse refuge",
	}
}

fields := set()

# Arrays, not sets: every engine returns them the same way.
decision := {
	"request": [r | some r in request],
	"persons": [p | some p in persons],
	"fields": [f | some f in fields],
}
