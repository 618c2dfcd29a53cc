package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxFileSize bounds a scenario file: real ones are a few KiB; this only
// stops a wrong path (a binary, a log) from being read whole.
const maxFileSize = 1 << 20

// Load reads and parses a scenario file. It applies defaults but does not
// validate: apply overrides first, then call Validate.
func Load(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("scenario %s: larger than %d bytes", path, maxFileSize)
	}
	return Parse(path, data)
}

// Parse parses a scenario from data; file names it in errors and gives the
// default Name. Unknown keys and wrongly typed values are errors naming their
// line. Defaults are applied; Validate is separate (see Load).
func Parse(file string, data []byte) (*Scenario, error) {
	s := &Scenario{file: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("scenario %s: the file is empty", file)
		}
		return nil, fmt.Errorf("scenario %s: %s", file, explainYAML(err))
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil && len(root.Content) > 0 {
		s.src = root.Content[0]
	}
	if s.Name == "" {
		base := filepath.Base(file)
		s.Name = strings.TrimSuffix(base, filepath.Ext(base))
	}
	s.setDefaults()
	return s, nil
}

var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)

// explainYAML rewrites yaml.v3's messages for unknown keys ("field x not
// found in type scenario.Chat") into the file's own vocabulary, listing the
// keys that are valid there.
func explainYAML(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	lines := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := unknownField.FindStringSubmatch(e)
		if m == nil {
			lines = append(lines, e)
			continue
		}
		sec, ok := sections[strings.TrimPrefix(m[3], "scenario.")]
		if !ok {
			lines = append(lines, e)
			continue
		}
		lines = append(lines, fmt.Sprintf("line %s: unknown key %q in %s (valid keys: %s)",
			m[1], m[2], sec.where, strings.Join(sec.keys, ", ")))
	}
	return strings.Join(lines, "; ")
}

type section struct {
	where string
	keys  []string
}

// sections maps each struct of the format to how an operator calls it.
var sections = func() map[string]section {
	m := map[string]section{}
	add := func(v any, where string) {
		t := reflect.TypeOf(v)
		var keys []string
		for i := 0; i < t.NumField(); i++ {
			if tag := t.Field(i).Tag.Get("yaml"); tag != "" && tag != "-" {
				keys = append(keys, strings.Split(tag, ",")[0])
			}
		}
		m[t.Name()] = section{where, keys}
	}
	add(Scenario{}, "the top level")
	add(Ramp{}, "ramp")
	add(RoomGroup{}, "a rooms entry")
	add(Chat{}, "chat")
	add(Likes{}, "likes")
	add(Gifts{}, "gifts")
	add(Step{}, "a steps entry")
	add(Scale{}, "scale")
	add(SLO{}, "slo")
	add(LatencyTargets{}, "slo.latency_p99")
	add(Client{}, "client")
	return m
}()

// FieldError is a validation error: the key path (rooms[1].viewers), its line
// in the file when known, and what is wrong.
type FieldError struct {
	File string
	Path string
	Line int
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("scenario %s: line %d: %s: %s", e.File, e.Line, e.Path, e.Msg)
	}
	return fmt.Sprintf("scenario %s: %s: %s", e.File, e.Path, e.Msg)
}

// lineOf finds the line of a key path such as "rooms[1].viewers" in the
// parsed file: the deepest element of the path that exists (a missing key
// reports its parent's line), 0 when nothing matches or the scenario was
// not parsed from a file.
func lineOf(root *yaml.Node, path string) int {
	n := root
	line := 0
	for _, part := range splitPath(path) {
		if n == nil {
			break
		}
		var next *yaml.Node
		if idx, err := strconv.Atoi(part); err == nil {
			if n.Kind == yaml.SequenceNode && idx < len(n.Content) {
				next = n.Content[idx]
			}
		} else if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					next = n.Content[i+1]
					line = n.Content[i].Line
					break
				}
			}
		}
		if next == nil {
			break
		}
		n = next
		if n.Line > 0 && n.Kind != yaml.ScalarNode {
			line = n.Line
		}
	}
	return line
}

// splitPath turns "rooms[1].chat.rate" into rooms, 1, chat, rate.
func splitPath(path string) []string {
	path = strings.ReplaceAll(path, "[", ".")
	path = strings.ReplaceAll(path, "]", "")
	return strings.Split(path, ".")
}
