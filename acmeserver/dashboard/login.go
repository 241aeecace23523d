package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func (d *Dashboard) loginForm(w http.ResponseWriter, _ *http.Request) {
	if err := d.render(w, "login", nil, nil); err != nil {
		d.fail(w, err)
	}
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	addr := clientAddr(r)
	if wait := d.signIns.wait(addr); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		w.WriteHeader(http.StatusTooManyRequests)
		_ = d.render(w, "login", nil, map[string]any{"Error": fmt.Sprintf("Too many failed sign-ins from your address; try again in %s.", wait.Round(time.Second))})
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the sign-in form could not be read (at most 16 KiB)", http.StatusRequestEntityTooLarge)
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	user, err := d.o.Auth.Authenticate(r.Context(), token)
	if err != nil {
		if !errors.Is(err, ErrUnauthenticated) {
			d.o.Log.Error("dashboard sign-in", "err", err)
		}
		d.signIns.failed(addr)
		w.WriteHeader(http.StatusUnauthorized)
		_ = d.render(w, "login", nil, map[string]any{"Error": "That token does not sign you in."})
		return
	}
	cookie, err := d.sessions.issue(user)
	if err != nil {
		d.fail(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: cookie, Path: "/dashboard/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(SessionLifetime / time.Second)})
	http.Redirect(w, r, "/dashboard/", http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/dashboard/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/dashboard/login", http.StatusSeeOther)
}
