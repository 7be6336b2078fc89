# Local policy of the benefits office: what it will not release, whatever the broker decided.
# Input and decision shapes: connectors/local_policy.py and docs/agency-guide.md.
package junction.local.benefits

import rego.v1

# The office shares under the Children Act only, not for early help.
accepted_purposes := {"child_in_need_assessment", "child_protection_enquiry"}

request contains refusal if {
	not input.purpose in accepted_purposes
	refusal := {
		"scope": "purpose",
		"code": "purpose-not-accepted",
		"reason": sprintf("the benefits office does not share for %s", [input.purpose]),
	}
}

# Requests must come from a named role; a system account is not enough.
request contains refusal if {
	input.operation == "fetch"
	not input.requester.role
	refusal := {
		"scope": "requester",
		"code": "role-required",
		"reason": "the benefits office answers requests made by a named role",
	}
}

# A claimant at a refuge address is never disclosed.
persons contains refusal if {
	some person in input.persons
	"refuge" in person.flags
	refusal := {
		"ref": person.ref,
		"code": "refuge-protected",
		"reason": "the claimant's address is a domestic abuse refuge",
	}
}

fields := set()

# Arrays, not sets: every engine returns them the same way.
decision := {
	"request": [r | some r in request],
	"persons": [p | some p in persons],
	"fields": [f | some f in fields],
}
