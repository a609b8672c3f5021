package outbound

// EDUDirectToDevice is the EDU that carries send-to-device messages.
// Its rows are queued by the to-device service in the same database
// transaction as the client's transaction ID (storage.SendToDevice), not
// through QueueEDU, and carry no coalesce key: every one is delivered, in
// the order queued, whatever presence or receipts are replaced beside
// them.
const EDUDirectToDevice = "m.direct_to_device"

// Queued tells the sender that rows were queued for destinations outside
// QueueEDU (in another database transaction that has committed), so their
// workers send them now.
func (s *Sender) Queued(destinations ...string) {
	for _, d := range destinations {
		if d != "" && d != s.serverName {
			s.kickWorker(d)
		}
	}
}
