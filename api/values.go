package api

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// readValue reads the request body, at most Config.MaxBodySize bytes, as
// exactly one JSON value, with numbers as package model wants them:
// integers as int64, other numbers as float64.
func (s *Server) readValue(w http.ResponseWriter, r *http.Request) (any, error) {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodySize)
	dec := json.NewDecoder(body)
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, err
		case errors.Is(err, io.EOF):
			return nil, errorf(http.StatusBadRequest, "empty body: want a JSON value")
		}
		return nil, errorf(http.StatusBadRequest, "malformed JSON: %v", err)
	}
	// One value and nothing after it but white space.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, "malformed JSON: data after the value")
	}
	return numbers(v)
}

// numbers replaces the json.Numbers in v by int64 (integer literals) or
// float64 (the others). An integer literal beyond int64 is an error rather
// than a rounded float.
func numbers(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		s := string(v)
		if !strings.ContainsAny(s, ".eE") {
			i, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "integer %s is beyond 64 bits", s)
			}
			return i, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, errorf(http.StatusBadRequest, "number %s is beyond float64", s)
		}
		return f, nil
	case []any:
		for i, e := range v {
			n, err := numbers(e)
			if err != nil {
				return nil, err
			}
			v[i] = n
		}
	case map[string]any:
		for k, e := range v {
			n, err := numbers(e)
			if err != nil {
				return nil, err
			}
			v[k] = n
		}
	}
	return v, nil
}
