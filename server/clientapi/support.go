package clientapi

import (
	"net/http"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Support discovery (spec: "GET /.well-known/matrix/support"): the
// administrators' contacts and help page from the [support] config.
func (a *API) registerSupport(rt *httpapi.Router) {
	rt.Handle(http.MethodGet, "/.well-known/matrix/support", a.support)
}

type supportContact struct {
	MatrixID     string `json:"matrix_id,omitempty"`
	EmailAddress string `json:"email_address,omitempty"`
	Role         string `json:"role"`
}

type supportResponse struct {
	Contacts    []supportContact `json:"contacts,omitempty"`
	SupportPage string           `json:"support_page,omitempty"`
}

func (a *API) support(w http.ResponseWriter, r *http.Request) error {
	s := a.deps.Support
	if !s.Configured() {
		return mautrix.MNotFound.WithMessage("No support information is configured for this server")
	}
	resp := supportResponse{SupportPage: s.Page}
	for _, c := range s.Contacts {
		resp.Contacts = append(resp.Contacts, supportContact{MatrixID: c.MatrixID, EmailAddress: c.EmailAddress, Role: c.Role})
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}
