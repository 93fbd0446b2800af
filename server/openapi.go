package server

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDocument is the API's contract, written by hand beside the handlers; the tests
// hold it to every registered route and to real answers.
//
//go:embed openapi.json
var openAPIDocument []byte

func handleOpenAPI() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Data(http.StatusOK, "application/json", openAPIDocument)
	}
}
