package clientapi

import "github.com/palpo-im/palpo-desktop/server/httpapi"

func (a *API) registerLogin(rt *httpapi.Router) {}
