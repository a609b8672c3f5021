package syncer

import (
	"encoding/json"

	"maunium.net/go/mautrix/federation/pdu"
)

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

func stateKeys(evType, stateKey string) []pdu.StateKey {
	return []pdu.StateKey{{Type: evType, StateKey: stateKey}}
}
